#!/usr/bin/env bash
# The main job of README.md: set up, then run the demo (offline data).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
exec .venv/bin/sklearn-ood demo "$@"
