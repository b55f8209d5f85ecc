#!/usr/bin/env bash
# Build the HTML documentation into docs/_build/html.
#
#   bash docs/build.sh                                  # every example runs
#   SKLEARN_OOD_DOCS_EXAMPLES=none bash docs/build.sh   # no example runs (quick)
#   PYTHON=/path/to/python bash docs/build.sh           # another environment
#
# Without PYTHON, the build uses the project's .venv: scripts/setup_env.sh
# creates it (as for the tests), and the docs extra (Sphinx, numpydoc,
# sphinx-gallery, pydata-sphinx-theme) is installed into it the first time.
# A PYTHON of your own must have `pip install -e ".[docs]"`.
#
# A warning fails the build (-W), every cross-reference to sklearn-ood must
# resolve (-n), and docs/check_links.py then checks every internal link of the
# HTML. Intersphinx links numpy / scipy / scikit-learn / torch / matplotlib /
# Python objects when their sites answer (SKLEARN_OOD_DOCS_INTERSPHINX=auto,
# online or offline; see docs/conf.py). Extra arguments go to sphinx-build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
need="import sphinx, numpydoc, sphinx_gallery, pydata_sphinx_theme, matplotlib"
if [ -n "${PYTHON:-}" ]; then
    python="$PYTHON"
    if ! "$python" -c "$need" 2>/dev/null; then
        echo "[docs] $python lacks the docs extra: pip install -e \".[docs]\"" >&2
        exit 1
    fi
else
    bash scripts/setup_env.sh
    python=.venv/bin/python
    if ! "$python" -c "$need" 2>/dev/null; then
        echo "[docs] installing the docs extra into .venv"
        "$python" -m pip install -q -c requirements/constraints.txt -e ".[docs]"
    fi
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" MPLBACKEND=Agg
"$python" -m sphinx -W --keep-going -n -b html -d docs/_build/doctrees \
    docs docs/_build/html "$@"
"$python" docs/check_links.py docs/_build/html
