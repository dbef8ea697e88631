#!/bin/bash
# Block rate, queue and RocksDB background CPU through one `tfnode bench` run, every ~0.7 s.
#
#   benches/heights_trace.sh [RATE] [DURATION]      (defaults 10000 and 20; run from the repository root)
#
# Starts `tfnode bench --validators 4 --rate RATE --duration DURATION --json` and, from 8 s
# in, prints node 0's committed height (`status.json`), its mempool queue, and the CPU ticks
# (1/100 s) its `rocksdb:*` threads (flushes, compactions) took since the previous line: a
# stall shows as heights that stop climbing while the queue grows. Then the bench's own figures.
# docs/benchmarks.md ("Why p99 stays above 1 s at 10,000/s") shows what it found.
set -u
RATE=${1:-10000}
DURATION=${2:-20}
OUT=$(mktemp)
(.venv/bin/tfnode bench --validators 4 --duration "$DURATION" --rate "$RATE" --json > "$OUT" 2>/dev/null &)
sleep 8
d=$(ls -dt /tmp/tfnode-bench-*/net/node-0 | head -1)
P=$(pgrep -f "tfnode start --home $d" | head -1)
prev=0
while kill -0 "$P" 2>/dev/null; do
  bg=0
  for t in /proc/"$P"/task/*; do
    case "$(cat "$t"/comm 2>/dev/null)" in
      rocksdb*) bg=$((bg + $(awk '{print $14+$15}' "$t"/stat 2>/dev/null || echo 0))) ;;
    esac
  done
  .venv/bin/python -c "
import json, sys, time
s = json.load(open(sys.argv[1]))
print(f\"{time.strftime('%H:%M:%S')} height {s['height']} queue {s['mempool']['txs']} rocksdb_ticks {int(sys.argv[2])}\")" \
    "$d/data/status.json" "$(( bg > prev ? bg - prev : 0 ))" 2>/dev/null
  prev=$bg
  sleep 0.5
done
sleep 3
.venv/bin/python -c "import json, sys; r = json.load(open(sys.argv[1])); print({k: r[k] for k in ('tps', 'cpu_us_per_tx_per_node', 'p50_ms', 'p99_ms')})" "$OUT"
rm -f "$OUT"
