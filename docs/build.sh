#!/usr/bin/env bash
# Build the documentation site strictly and execute every course notebook.
# Needs the docs extra: pip install '.[docs]'. Run from anywhere; works in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
python docs/run_tutorials.py --out "${TUTORIALS_OUT:-site-notebooks}"
python -m mkdocs build --strict --site-dir "${SITE_DIR:-site}"
