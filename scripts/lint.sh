#!/usr/bin/env bash
# Lint, format check and type check, as CI runs them (needs the venv with every extra: scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy" vidihand_ros benchmarks tests examples
