"""The node's GC tuning (tfnode.node.gctune): the start-up heap is frozen and young
collections are rarer, but garbage cycles made afterwards are still collected, so memory
stays bounded. Each case runs in a fresh interpreter (freezing pytest's own heap would leak
into the other tests)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_CYCLES = """
import gc, json
from tfnode.node import gctune

class Node:
    alive = 0
    def __init__(self):
        Node.alive += 1
        self.me = self  # a reference cycle: only the cyclic collector frees it
    def __del__(self):
        Node.alive -= 1

tuned = gctune.tune_after_start()
peak = 0
for i in range(400_000):  # eight times the young threshold in cycles, nothing kept
    Node()
    peak = max(peak, Node.alive)
print(json.dumps({"tuned": tuned, "peak": peak, "threshold": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "left": Node.alive}))
"""


def _run(env_gc: str | None) -> dict:
    import json

    env = dict(os.environ)
    env.pop("TFNODE_GC", None)
    if env_gc is not None:
        env["TFNODE_GC"] = env_gc
    out = subprocess.run([sys.executable, "-c", _CYCLES], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cycles_made_after_tuning_are_still_collected():
    from tfnode.node.gctune import GEN0_THRESHOLD

    r = _run(None)
    assert r["tuned"] and r["threshold"][0] == GEN0_THRESHOLD
    assert r["frozen"] > 1000  # the interpreter's and tfnode's start-up objects
    # Never more uncollected cycles than one young generation's worth (each cycle is one
    # container: the instance; its __dict__ is inlined): 400,000 were made.
    assert r["peak"] <= GEN0_THRESHOLD + 10, r
    assert r["left"] < GEN0_THRESHOLD, r


@pytest.mark.parametrize("value", ["default"])
def test_env_keeps_cpython_defaults(value):
    r = _run(value)
    assert not r["tuned"] and r["threshold"][0] == 700 and r["frozen"] == 0
    assert r["peak"] <= 710, r
