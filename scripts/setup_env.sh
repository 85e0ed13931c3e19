#!/usr/bin/env bash
# Creates (or reuses) .venv in the repository and installs tsn_keras into it.
# Usage: bash scripts/setup_env.sh [demo|test]
#   demo: the package and its runtime dependencies.
#   test: also the dev extra (pytest, ruff, fusepy), the PyTorch reference used by the parity
#         test, Apache Beam (the DirectRunner conversion tests), jax (the cross-backend and JAX
#         solver tests) and litert (the LiteRT export tests); and, when missing, Debian's
#         ffmpeg (ffmpeg and ffprobe write the test videos and give their frame counts) and
#         fuse3 and libfuse2 (the FUSE file whose reads hang: fusepy loads libfuse.so.2),
#         with apt-get (as root, or through sudo).
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

if [ "$what" = "test" ]; then
  # Debian packages, only when a command is missing (quiet when all are there).
  missing=()
  command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
  command -v fusermount3 >/dev/null 2>&1 || command -v fusermount >/dev/null 2>&1 \
    || missing+=(fuse3)
  # fusepy loads libfuse.so.2 with ctypes (fuse3 does not ship it)
  libfuse2=0
  { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libfuse\.so\.2' || libfuse2=1
  if [ "${#missing[@]}" -gt 0 ] || [ "$libfuse2" = 1 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    # after the update, so that the package lists know both names (Debian 13: libfuse2t64)
    if [ "$libfuse2" = 1 ]; then
      if apt-cache show libfuse2t64 >/dev/null 2>&1; then missing+=(libfuse2t64); else missing+=(libfuse2); fi
    fi
    echo "[setup] apt-get install ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
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
  # beam: tests/test_beam.py runs the conversion on Beam's DirectRunner; jax, litert: the
  # cross-backend and LiteRT tests.
  "${pip[@]}" -e ".[dev,convert,beam,jax,litert]"
else
  "${pip[@]}" -e .
fi
echo "$want" > "$stamp"
echo "[setup] .venv ready ($what)"
