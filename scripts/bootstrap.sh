#!/usr/bin/env bash
# Prepare a fresh machine for tfnode: a virtual environment in .venv with every Python
# dependency, and the native core built in release mode into it. Idempotent: a second
# run only rebuilds what changed. Needs only what the machine image ships (python3, cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TFNODE_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.deps-stamp"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing Python dependencies"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "maturin>=1.5,<2" "cryptography>=42" "typer>=0.12" "rich>=13" "uvloop>=0.19" "pytest>=8" "hypothesis>=6.100" \
        "pytest-benchmark>=4" "gmssl>=3.2"
    touch "$stamp"
fi

echo "==> building the native core (release)"
# maturin develop installs tfnode into the venv as an editable package with tfnode/_core*.so
VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/maturin" develop --release -q
"$PY" -c "import tfnode._core" || { echo "native module failed to import" >&2; exit 1; }
