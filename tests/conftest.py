"""Shared fixtures: the checkout's paths and the optional ../shared reference folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Hand tests to pytest-xdist's workers one at a time (its ``--maxschedchunk``), unless asked
    otherwise: with the default batches, the first worker takes the whole head of the list, and
    with it every long case sorted there (below), while the other runs out of work."""
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the cases marked ``cost(seconds)`` first, longest first, the rest in their order: on
    several workers the long ones then overlap each other and the short ones fill the gaps
    (longest-first scheduling), instead of one long case starting when the rest are done."""
    def cost(item: pytest.Item) -> float:
        mark = item.get_closest_marker("cost")
        return float(mark.args[0]) if mark and mark.args else 0.0

    order = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda item: (-cost(item), order[id(item)]))


def find_shared_dir() -> Path | None:
    """The shared reference folder: $ANESIM_SHARED, else ../shared beside the checkout."""
    env = os.environ.get("ANESIM_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for candidate in candidates:
        if (candidate / "hwx").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of the checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared reference folder; tests that need it skip when it is absent."""
    found = find_shared_dir()
    if found is None:
        pytest.skip("../shared (sample programs and measurements) is not beside this checkout")
    return found


@pytest.fixture(scope="session")
def eiln_dir(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw kernels unpacked into a temporary folder (the binaries are not part of the checkout)."""
    from anesim.hwx.fuzzing import eiln_kernels

    out = tmp_path_factory.mktemp("eiln")
    for rel, data in eiln_kernels(shared_dir):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out
