"""Reports for people: why a program takes its time (explain) and figures of a timing result."""

from anesim.report.explain import Explanation, explain

__all__ = ["Explanation", "explain"]
