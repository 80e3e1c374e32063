"""Where the data folders shipped with anesim live: in a checkout, or inside the installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(checkout_name: str, wheel_name: str) -> Path:
    """The checkout's top-level folder ``checkout_name``, or its copy ``anesim/<wheel_name>`` in a wheel.

    pyproject.toml maps each top-level data folder to a data-only package inside ``anesim`` so
    that an installed anesim finds the same files without a checkout.
    """
    root = _PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / checkout_name).is_dir():
        return root / checkout_name
    return _PACKAGE / wheel_name
