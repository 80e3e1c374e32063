"""Packaging and import direction across the package.

pyproject.toml lists every package (the data-only ones cannot be discovered), so a package
directory added under ``anesim/`` without an entry would silently be left out of the wheel;
and the public API in ``anesim/__init__.py`` is a facade over the subpackages, so a module it is
built from must not import it back.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "anesim"


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _directory_of(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools looks for a package, following the longest ``package-dir`` prefix."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return ROOT.joinpath(package_dir[prefix], *parts[cut:])
    return ROOT.joinpath(*parts)


def test_every_package_directory_under_anesim_is_packaged() -> None:
    config = _setuptools()
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("*.py")
               if "__pycache__" not in p.parts}
    missing = sorted(on_disk - listed)
    assert not missing, f"package directories missing from [tool.setuptools] packages: {missing}"


def test_every_listed_package_exists() -> None:
    config = _setuptools()
    for package in config["packages"]:
        assert _directory_of(package, config["package-dir"]).is_dir(), package


def test_every_shipped_data_file_is_declared() -> None:
    """The files of the data-only packages (and the register maps) match their package-data."""
    config = _setuptools()
    package_data = config["package-data"]
    for package, patterns in package_data.items():
        folder = _directory_of(package, config["package-dir"])
        files = [p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".py"]
        assert files, package
        left_out = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
        assert not left_out, f"{package}: files not in package-data: {left_out}"
    data_only = [p for p in config["packages"] if not _directory_of(p, config["package-dir"]).joinpath(
        "__init__.py").is_file()]
    assert sorted(data_only) == sorted(p for p in data_only if p in package_data)
    assert {"anesim._chipdata", "anesim._chipdata.generations", "anesim._validationdata",
            "anesim._programdata"} <= set(data_only)
    assert "anesim.hwx.regmaps" in package_data


def _imports_the_package_back(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import) and any(a.name == "anesim" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "anesim" and node.level == 0:
            lines.append(node.lineno)
    return lines


def test_no_module_below_the_api_imports_the_package_back() -> None:
    """``import anesim`` / ``from anesim import x`` only in the package itself, the CLI and anesim.testing.

    The command line and the pytest plugin are the API's users (they sit above the facade); every other module imports
    the subpackage it needs (``anesim.numerics``, ``anesim.timing``, ...).
    """
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[1] in ("cli", "testing") or relative.name == "__main__.py" or path == PACKAGE / "__init__.py":
            continue
        offenders += [f"{relative}:{line}" for line in _imports_the_package_back(path)]
    assert not offenders, f"modules importing the top-level package: {offenders}"
