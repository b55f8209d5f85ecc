#!/usr/bin/env bash
# Build the HTML documentation without warnings (a warning fails the build).
#
#   bash docs/build.sh                          # quick examples run, others shown
#   SKLEARN_OOD_DOCS_EXAMPLES=all bash docs/build.sh    # run every example
#   SKLEARN_OOD_DOCS_EXAMPLES=none bash docs/build.sh   # run no example
#
# Needs the docs extra: pip install -e ".[docs,all]". Output: docs/_build/html.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then
    python=.venv/bin/python
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" MPLBACKEND=Agg
exec "$python" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
