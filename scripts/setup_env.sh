#!/usr/bin/env bash
# Create (or reuse) .venv with sklearn-ood and everything the demo and the tests
# need, offline-capable data included. Idempotent: a second run takes seconds.
# Usage: source scripts/setup_env.sh   (or run it; it exits 0 when ready)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.sklearn_ood_setup
want="$(cat pyproject.toml requirements/constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing sklearn-ood and its test/demo dependencies"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  log=.venv/pip-install.log
  if ! .venv/bin/python -m pip install -q -c requirements/constraints.txt \
      -e ".[all,test]" > "$log" 2>&1 \
      || ! .venv/bin/python -c "import sklearn_ood, torch, sklearn"; then
    grep -v "^WARNING: Location" "$log" | tail -n 40 >&2
    echo "[setup] installation failed (full log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
# Fashion-MNIST from Debian (30 MB), when we may install system packages.
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] && [ -z "${SKLEARN_OOD_DATA:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  else
    echo "[setup] Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist'" \
         "or set SKLEARN_OOD_DATA to a folder with its IDX files" >&2
  fi
fi
