#!/usr/bin/env bash
# The cargo-fuzz targets in fuzz/ (one per decoder or state machine that takes bytes from
# outside).
#
#   scripts/fuzz.sh short [target...]   deterministic; part of `make test` (2-4 minutes)
#       1. replays every committed input: fuzz/regressions/<target>/ (every crash ever found)
#          and fuzz/seeds/<target>/ (a small curated corpus);
#       2. explores for a fixed number of runs (TFNODE_FUZZ_RUNS, or the target's entry in
#          RUNS below) with a fixed seed (TFNODE_FUZZ_SEED), starting from a temporary copy
#          of those committed inputs only. Same tree, same inputs, same mutations: the same
#          answer every time, whatever an earlier run left in fuzz/corpus/.
#   scripts/fuzz.sh long [target...]    open-ended; `make slow` (10 min a target,
#          TFNODE_FUZZ_SECONDS overrides). Explores from fuzz/corpus/<target>/ (kept across
#          runs, not in git) seeded with the committed inputs; a crash is saved under
#          fuzz/artifacts/<target>/ and the run fails, naming the file to add to
#          fuzz/regressions/<target>/ once it is fixed (see docs/architecture.md, "Fuzzing").
#
# cargo-fuzz needs nightly-only compiler flags (sanitizer coverage); the machine has one
# stable toolchain, so we let it accept them with RUSTC_BOOTSTRAP=1. No sanitizer runtime
# is linked (-s none): Rust's own bounds checks plus overflow checks and debug assertions
# (fuzz/Cargo.toml's release profile) catch the bugs we fuzz for: panics on hostile input.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-short}
[ $# -gt 0 ] && shift
case "$mode" in
    short | long) ;;
    *) echo "usage: $0 short|long [target...]" >&2; exit 2 ;;
esac

# Runs per target in short mode: 5 to 10 CPU-seconds each (measured from the committed
# seeds; the script prints each target's CPU time), so that the thirteen together take
# about two minutes on an idle two-core machine and three to four on a busy one. The
# costs per run differ a thousandfold: the consensus core ~130 us, SM2 decryption ~100 us,
# SM2 verification ~100 us once inputs parse, the small decoders a few us or less.
declare -A RUNS=(
    [consensus_core]=80000
    [consensus_decode]=1500000
    [iot_batch]=600000
    [ledger_batch]=1000000
    [ledger_proof]=1500000
    [ledger_tx]=400000
    [merkle_proof]=800000
    [sm2_decrypt]=80000
    [sm2_pubkey]=1500000
    [sm2_signature]=5000000
    [sm2_verify]=100000
    [sm3_stream]=300000
    [sm4_gcm]=200000
)
seed=${TFNODE_FUZZ_SEED:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (once per machine)"
    cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_FUZZ:-$PWD/fuzz/target}
cd fuzz
targets=${*:-$(cargo fuzz list)}
build_log=$(mktemp)
cargo fuzz build -s none >"$build_log" 2>&1 || {
    cat "$build_log" >&2
    exit 1
}
rm -f "$build_log"
bindir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
mkdir -p "$CARGO_TARGET_DIR/logs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The committed inputs of a target, as directories that exist and hold files.
committed() {
    local d
    for d in "regressions/$1" "seeds/$1"; do
        if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then echo "$d"; fi
    done
}

fail() { # target, log, what
    echo "fuzz $1: FAILED ($3); log: $2" >&2
    grep -E 'panicked at|^SUMMARY|Test unit written to|^==[0-9]+== ERROR' "$2" | head -5 >&2 || true
    tail -20 "$2" >&2
    failed=$((failed + 1))
}

# Repeatable exploration. Address-space randomisation off where the kernel lets us:
# libFuzzer learns from compared values (-use_cmp), and Rust compares pointers (slice
# iterators), so with ASLR two runs with one seed mutate differently. One rayon thread:
# coverage counted on worker threads depends on their timing. What still varies between
# processes is std's HashMap seed (the consensus core, the SM2 key cache, the state tree):
# those targets' exploration can drift after some thousands of runs (docs/architecture.md,
# Fuzzing).
norand=()
if setarch "$(uname -m)" -R true 2>/dev/null; then norand=(setarch "$(uname -m)" -R); fi
if [ "$mode" = short ]; then export RAYON_NUM_THREADS=1; fi

failed=0 passed=0
TIMEFORMAT=%U # bash's `time`: user CPU seconds, to size RUNS on a busy machine
for t in $targets; do
    log="$CARGO_TARGET_DIR/logs/fuzz-$t.log"
    : >"$log"
    read -r -a dirs <<<"$(committed "$t" | tr '\n' ' ')"
    ninputs=0
    [ ${#dirs[@]} -gt 0 ] && ninputs=$(find "${dirs[@]}" -type f | wc -l)
    # 1. Replay: a committed input that crashes fails the step, whatever the mode.
    if [ "$ninputs" -gt 0 ]; then
        if ! "$bindir/$t" -runs=0 -rss_limit_mb=2048 -artifact_prefix="$work/" "${dirs[@]}" >"$log" 2>&1; then
            fail "$t" "$log" "a committed input crashes"
            continue
        fi
    fi
    start=$SECONDS
    if [ "$mode" = short ]; then
        # 2. Fixed exploration from a private copy of the committed inputs: what it adds to
        # the copy is thrown away, so the next run starts from the same place.
        runs=${TFNODE_FUZZ_RUNS:-${RUNS[$t]:-50000}}
        mkdir -p "$work/$t" "$work/crash-$t"
        for d in "${dirs[@]}"; do cp "$d"/* "$work/$t/"; done
        # -reload=0: never re-read the corpus folder on a timer (time must not steer a run).
        if { time "${norand[@]}" "$bindir/$t" -runs="$runs" -seed="$seed" -reload=0 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$work/crash-$t/" "$work/$t" >>"$log" 2>&1; } 2>"$work/cpu"; then
            echo "fuzz $t: ok ($ninputs committed inputs replayed; $runs runs, seed $seed; $((SECONDS - start)) s, $(cat "$work/cpu") s CPU)"
            passed=$((passed + 1))
        else
            mkdir -p "artifacts/$t"
            cp "$work/crash-$t"/* "artifacts/$t/" 2>/dev/null || true
            fail "$t" "$log" "exploration crashed; input saved under fuzz/artifacts/$t/"
        fi
    else
        secs=${TFNODE_FUZZ_SECONDS:-600}
        mkdir -p "corpus/$t" "artifacts/$t"
        for d in "${dirs[@]}"; do cp "$d"/* "corpus/$t/"; done
        if "$bindir/$t" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$PWD/artifacts/$t/" "corpus/$t" >>"$log" 2>&1; then
            execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
            echo "fuzz $t: ok ($ninputs committed inputs replayed; ${execs:-?} runs in ${secs} s)"
            passed=$((passed + 1))
        else
            fail "$t" "$log" "crash saved under fuzz/artifacts/$t/; fix it, then add the file to fuzz/regressions/$t/"
        fi
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
