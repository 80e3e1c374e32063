"""The functional engine: what a program computes, with the engine's fp16 numerics."""

from anesim.functional.execute import check_inputs, check_numerics, draw_inputs, execute, random_inputs
from anesim.functional.stats import TaskOutputStats, task_output_stats

__all__ = ["TaskOutputStats", "check_inputs", "check_numerics", "draw_inputs", "execute", "random_inputs",
           "task_output_stats"]
