"""Where the data folders shipped with anesim live: in a checkout, or inside the installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(checkout_name: str, wheel_name: str) -> Path:
    """The checkout's top-level folder ``checkout_name``, or its copy ``anesim/<wheel_name>`` in a wheel.

    pyproject.toml maps each top-level data folder to a data-only package inside ``anesim`` so
    that an installed anesim finds the same files without a checkout.
    """
    if in_checkout(checkout_name):
        return _PACKAGE.parent / checkout_name
    return _PACKAGE / wheel_name


def in_checkout(checkout_name: str) -> bool:
    """Whether the folder ``checkout_name`` is read from a source checkout (files a developer
    edits and commits) rather than from the installed package."""
    root = _PACKAGE.parent
    return (root / "pyproject.toml").is_file() and (root / checkout_name).is_dir()
