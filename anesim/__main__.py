"""``python -m anesim`` runs the CLI."""

import sys

from anesim.cli import main

sys.exit(main())
