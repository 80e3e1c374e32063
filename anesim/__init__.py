"""anesim: a cycle-approximate simulator of the Apple Neural Engine."""

from anesim.errors import AnesimError

__version__ = "0.1.0"

__all__ = ["AnesimError", "__version__"]
