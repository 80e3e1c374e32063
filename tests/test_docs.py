"""The documentation site builds strictly and every course notebook executes (pytest -m docs)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("mkdocs", "material", "mkdocstrings", "jupytext", "nbclient", "ipykernel")
missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.docs,
              pytest.mark.skipif(bool(missing), reason=f"docs extra not installed (missing: {', '.join(missing)})")]


@pytest.mark.cost(6)
def test_site_builds_strictly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "M5 Pro" in (tmp_path / "site" / "reference" / "chip-table" / "index.html").read_text()


@pytest.mark.cost(25)
def test_every_tutorial_executes_with_figures_within_budget(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    import run_tutorials

    books = run_tutorials.notebooks()
    assert len(books) >= 6
    total = 0.0
    for path in books:
        text = path.read_text()
        assert "## Exercises" in text and "guide chapter" in text, path.name
        seconds, _figures = run_tutorials.execute(path, tmp_path)
        total += seconds
    assert total < run_tutorials.BUDGET_S
