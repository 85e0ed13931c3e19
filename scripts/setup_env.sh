#!/usr/bin/env bash
# Creates (or reuses) .venv in the repository and installs tsn_keras into it.
# Usage: bash scripts/setup_env.sh [demo|test]
#   demo: the package and its runtime dependencies.
#   test: also the dev extra (pytest, ruff), the PyTorch reference used by the parity test and
#         JAX (CPU), the second Keras backend of the TV-L1 solver's test.
# Safe to run twice: a stamp file records what was installed for which setup.py, so a second
# run with nothing changed installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-demo}"
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi

stamp=".venv/.tsn_keras_$what"
want="$(cat setup.py scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date ($what)"
  exit 0
fi

pip=(.venv/bin/python -m pip install --quiet)
if [ "$what" = "test" ]; then
  # The CPU build of PyTorch, pinned: a bare "torch" would pull a multi-GB CUDA build.
  "${pip[@]}" "torch==2.13.0"
  # pretrainedmodels is the reference BN-Inception of the parity test. --no-deps: it
  # asks for torchvision, which the test does not need (it loads bninception.py alone).
  "${pip[@]}" --no-deps "pretrainedmodels==0.7.4"
  "${pip[@]}" -e ".[dev,convert,jax]"
else
  "${pip[@]}" -e .
fi
echo "$want" > "$stamp"
echo "[setup] .venv ready ($what)"
