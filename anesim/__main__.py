"""``python -m anesim`` runs the CLI."""

from anesim.cli import console

console()
