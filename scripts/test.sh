#!/usr/bin/env bash
# The test command of README.md (CI runs exactly this through .ci/run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
export OMP_WAIT_POLICY=PASSIVE
.venv/bin/ruff check sklearn_ood tests benchmarks examples
.venv/bin/ruff format --check sklearn_ood tests benchmarks examples
# -p no:cacheprovider keeps the clean clone clean; exit code 5 (no tests
# collected) is a failure here, as it should be.
.venv/bin/python -m pytest -p no:cacheprovider -q --durations=15 "$@"
