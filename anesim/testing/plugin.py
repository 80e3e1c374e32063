"""The anesim pytest plugin: session fixtures that run a model once, and the latency baseline.

Registered through the ``pytest11`` entry point, so installing anesim is enough; without the
entry point (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``) load it with ``-p anesim.testing.plugin``.
docs/testing.md documents the options, fixtures and assertions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from anesim.testing.baseline import Baseline

if TYPE_CHECKING:  # the simulator is imported when a test first asks for a run, not when pytest starts
    import numpy as np

    from anesim.testing.run import ModelRun

DEFAULT_BASELINE = "ane_baseline.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's command-line and ini options."""
    group = parser.getgroup("anesim", "Apple Neural Engine simulation (anesim)")
    group.addoption("--anesim-update-baseline", action="store_true", default=False,
                    help="record this session's predicted latencies in the baseline file instead of checking them")
    group.addoption("--anesim-baseline", metavar="PATH", default=None,
                    help=f"the latency baseline file (default: ini anesim_baseline, else {DEFAULT_BASELINE} "
                         "in the rootdir)")
    group.addoption("--anesim-numerics", choices=("exact", "fast"), default=None,
                    help="numerics mode of anesim_run when a test does not choose one (default: ini "
                         "anesim_numerics, else exact)")
    parser.addini("anesim_baseline", f"latency baseline file, relative to the rootdir (default {DEFAULT_BASELINE})")
    parser.addini("anesim_numerics", "default numerics mode of anesim_run: exact or fast", default="exact")
    parser.addini("anesim_latency_tolerance", "fraction a latency may exceed its baseline (default: the file's, "
                  "else 0.1)", default="")


def _baseline_path(config: pytest.Config) -> Path:
    option = config.getoption("--anesim-baseline")
    if option:
        return Path(option)
    return Path(config.rootpath) / (config.getini("anesim_baseline") or DEFAULT_BASELINE)


@pytest.fixture(scope="session")
def anesim_baseline(request: pytest.FixtureRequest) -> Iterator[Baseline]:
    """The latency baseline (one entry per model and chip); rewritten at the end of the session
    when pytest runs with ``--anesim-update-baseline``."""
    config = request.config
    tol_text = config.getini("anesim_latency_tolerance")
    baseline = Baseline.load(_baseline_path(config), update=config.getoption("--anesim-update-baseline"),
                             tolerance=float(tol_text) if tol_text else None)
    yield baseline
    if baseline.update and baseline.recorded:
        baseline.save()


@pytest.fixture(scope="session")
def anesim_run(request: pytest.FixtureRequest) -> Callable[..., ModelRun]:
    """A factory ``anesim_run(model, chip="m1", *, inputs=None, seed=0, numerics=None, name=None)``
    returning a :class:`~anesim.testing.ModelRun`; each distinct call compiles, executes and times
    once per session, however many tests ask for it."""
    config = request.config
    default_numerics = config.getoption("--anesim-numerics") or config.getini("anesim_numerics") or "exact"
    cache: dict[tuple[Any, ...], ModelRun] = {}

    def run(model: Any, chip: str = "m1", *, inputs: Mapping[str, np.ndarray] | None = None, seed: int = 0,
            numerics: str | None = None, name: str | None = None) -> ModelRun:
        from anesim.testing.run import inputs_digest, run_model

        mode = numerics or default_numerics
        source = str(Path(model).resolve()) if isinstance(model, (str, Path)) else id(model)
        key = (source, str(chip).lower(), mode, seed, inputs_digest(inputs), name)
        if key not in cache:
            cache[key] = run_model(model, chip, inputs=inputs, seed=seed, numerics=mode, name=name)
        return cache[key]

    return run


def pytest_report_header(config: pytest.Config) -> str:
    """One header line: the anesim version and the baseline file in use."""
    from anesim import __version__

    mode = "updating" if config.getoption("--anesim-update-baseline") else "checking"
    return f"anesim {__version__}: {mode} latency baseline {_baseline_path(config)}"
