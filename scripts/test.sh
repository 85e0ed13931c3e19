#!/usr/bin/env bash
# The test command: sets up .venv (with dev extras) and runs lint and the test suite without the
# tests marked slow (under 5 minutes on 2 cores).
#   bash scripts/test.sh               lint + the suite without the slow tests
#   bash scripts/test.sh --all         lint + every test (CI runs the slow ones too)
#   bash scripts/test.sh -k timeline   other arguments go to pytest as they are
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [ "${1:-}" = "--all" ]; then
  shift
elif [ $# -eq 0 ]; then
  set -- -m "not slow"
fi
.venv/bin/python -m pytest "$@"
