"""``python -m anesim.opsuite [OUT.md]``: run the suite and write docs/ops.md (or print it)."""

from __future__ import annotations

import sys
from pathlib import Path

from anesim.opsuite.report import render, run_all, run_compositions


def main(argv: list[str]) -> int:
    """Render the page; write it to the path given, else print it."""
    text = render(run_all(), run_compositions())
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
