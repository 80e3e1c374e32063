"""Execute every course notebook (docs/tutorials/*.md, jupytext Markdown) and report its run time.

Usage: python docs/run_tutorials.py [--out DIR] [NAME ...]. Each notebook runs with the checkout
as its working directory; executed .ipynb files (with their figures) go to DIR when given. Exits
non-zero when a notebook fails or the total exceeds the budget.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "docs" / "tutorials"
BUDGET_S = 180.0  # every tutorial together, on a 2-core CI machine


def notebooks(names: list[str] | None = None) -> list[Path]:
    """The tutorial notebooks, in course order."""
    paths = sorted(p for p in TUTORIALS.glob("*.md") if p.name != "index.md")
    return [p for p in paths if not names or any(n in p.name for n in names)]


def execute(path: Path, out: Path | None = None, timeout_s: int = 170) -> tuple[float, int]:
    """Run one notebook; returns (seconds, figures produced)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    seconds = time.perf_counter() - t0
    figures = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {}))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / (path.stem + ".ipynb"))
    return seconds, figures


def main(argv: list[str] | None = None) -> int:
    """Run the course and print a table of run times."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    total, failed = 0.0, []
    for p in notebooks(args.names):
        try:
            s, figs = execute(p, args.out)
            print(f"{p.name:32s} {s:6.1f} s  {figs} figure(s)", flush=True)
            total += s
        except Exception as exc:  # report every failing tutorial, not only the first
            failed.append(p.name)
            print(f"{p.name:32s} FAILED: {type(exc).__name__}: {str(exc)[-2000:]}", flush=True)
    print(f"{'total':32s} {total:6.1f} s (budget {BUDGET_S:.0f} s)")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed or total > BUDGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
