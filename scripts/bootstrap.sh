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
    # The dependency lists live in pyproject.toml only: read them from there.
    mapfile -t deps < <("$PY" - <<'PYEOF'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
for d in p["build-system"]["requires"] + p["project"]["dependencies"] + p["project"]["optional-dependencies"]["dev"]:
    print(d)
PYEOF
    )
    "$PY" -m pip install -q "${deps[@]}"
    touch "$stamp"
fi

echo "==> building the native core (release)"
# maturin develop installs tfnode into the venv as an editable package with tfnode/_core*.so
VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/maturin" develop --release -q
"$PY" -c "import tfnode._core" || { echo "native module failed to import" >&2; exit 1; }
