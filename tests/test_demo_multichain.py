"""`tfnode demo multichain --json` end to end (docs/multichain.md "Operations"): four node
processes hosting a main chain and the sub-chains trade and settlement, the seed flows between
them through a relayer killed and restarted mid-flight, forged proofs refused, a timed-out
payment refunded, every chain's ledgers compared on every node.

The demo runs as its own process group: whatever happens, the group (the demo, its nodes and
its relayer) is killed on the way out. Its own waits are bounded (120 s a step); the deadline
here is generous for a loaded machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

DEADLINE = 900.0


def test_demo_multichain_json():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfnode", "demo", "multichain", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the nodes and the relayer, if anything is left
        except ProcessLookupError:
            pass
        proc.wait()
    assert out.strip(), f"no output; stderr:\n{err[-4000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["failures"] == [], err[-4000:]
    assert proc.returncode == 0, err[-4000:]
    assert result["chains"] == ["tf-main", "trade", "settlement"]
    assert len(set(result["chains"])) == 3
    assert result["cross_chain_completed"] >= 1
    assert result["refunded_after_timeout"] >= 1
    assert result["forged_proofs_rejected"] >= 1
    assert 0 < result["max_proof_bytes"] < 16384
    assert result["ledgers_agree"] is True
    assert result["relayer_starts"] == 2 and result["ok"] is True
    # The narration went to stderr and names each outcome.
    assert "mid-flight" in err or "sent while it is dead" in err
    assert "refunded" in err and "identical" in err
