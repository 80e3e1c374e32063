"""Reports for people: why a program takes its time (explain) and figures of a timing result."""

from anesim.report.explain import Explanation, explain, programs_of

__all__ = ["Explanation", "explain", "programs_of"]
