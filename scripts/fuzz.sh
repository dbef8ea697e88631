#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a while.
#   scripts/fuzz.sh short   ~15 s per target (part of `make test`)
#   scripts/fuzz.sh long    10 min per target (TFNODE_FUZZ_SECONDS overrides)
# cargo-fuzz needs nightly-only compiler flags (sanitizer coverage); the machine has one
# stable toolchain, so we let it accept them with RUSTC_BOOTSTRAP=1. No sanitizer runtime
# is linked (-s none): Rust's own bounds checks plus debug assertions catch the bugs we
# fuzz for (panics on hostile input).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-short}
case "$mode" in
    short) secs=${TFNODE_FUZZ_SECONDS:-15} ;;
    long) secs=${TFNODE_FUZZ_SECONDS:-600} ;;
    *) echo "usage: $0 short|long" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (once per machine)"
    cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_FUZZ:-$PWD/fuzz/target}
targets=$(cd fuzz && cargo fuzz list)
cd fuzz
cargo fuzz build -s none
failed=0 ran=0
for t in $targets; do
    mkdir -p "corpus/$t"
    if cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
        >"target/fuzz-$t.log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/fuzz-$t.log" | awk '{print $2}' || true)
        echo "fuzz $t: ok (${execs:-?} runs in ${secs}s)"
        ran=$((ran + 1))
    else
        echo "fuzz $t: FAILED; log follows" >&2
        tail -40 "target/fuzz-$t.log" >&2
        failed=$((failed + 1))
    fi
done
echo "fuzz: $ran passed, $failed failed"
[ "$failed" -eq 0 ]
