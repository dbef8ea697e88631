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

# System packages some tests use, from Debian: headless Chromium and its driver for the
# explorer's browser test (tests/test_explorer.py), PostgreSQL for the mirror's test
# (tests/test_mirror.py). Each test skips, saying why, when its package is absent, so a
# machine without apt (or without root) still runs the rest of `make test`.
want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || want+=(postgresql)
# libclang for the core's own RocksDB (bindgen reads RocksDB's C header; docs/storage.md,
# "RocksDB engines"). Without it the core is built without that engine and stores use rocksdict.
# (libclang-N.so*, libclang.so*: the names bindgen loads; not libclang-cpp, another library)
have_libclang() {
    compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || compgen -G "/usr/lib/*/libclang.so*" >/dev/null ||
        compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null
}
have_libclang || want+=(libclang-dev)
if [ ${#want[@]} -gt 0 ] && [ -z "${TFNODE_NO_APT:-}" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || $sudo true 2>/dev/null; }; then
        echo "==> installing ${want[*]} (apt-get)"
        $sudo apt-get update -q >/dev/null 2>&1 || true
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >/dev/null \
            || echo "warning: apt-get install ${want[*]} failed; the tests that need them will be skipped" >&2
    else
        echo "note: ${want[*]} not installed and apt-get (as root) is unavailable; the explorer's browser" \
            "test, the PostgreSQL mirror test and/or the native RocksDB engine will be skipped" >&2
    fi
fi

# The core's RocksDB (cargo feature `rocksdb`) is compiled from source the first time: ~5
# minutes on 2 cores, then reused from target/.
features=()
if have_libclang && command -v c++ >/dev/null 2>&1; then
    features=(-F rocksdb)
else
    echo "note: libclang or a C++ compiler is missing: the core is built without its own RocksDB;" \
        "stores use rocksdict (docs/storage.md, \"RocksDB engines\")" >&2
fi
echo "==> building the native core (release${features:+, with RocksDB})"
# maturin develop installs tfnode into the venv as an editable package with tfnode/_core*.so
VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/maturin" develop --release -q "${features[@]}"
"$PY" -c "import tfnode._core" || { echo "native module failed to import" >&2; exit 1; }
