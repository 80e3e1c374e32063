"""The functional engine: what a program computes, with the engine's fp16 numerics."""

from anesim.functional.execute import check_inputs, check_numerics, draw_inputs, execute, random_inputs

__all__ = ["check_inputs", "check_numerics", "draw_inputs", "execute", "random_inputs"]
