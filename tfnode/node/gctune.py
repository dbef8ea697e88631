"""The node process's cyclic garbage collector, tuned once the node has started (issue 12).

A node allocates a few short-lived containers per transaction (RPC parsing, mempool entries,
receipts, blocks) and keeps a large heap that never dies (modules, code, contracts, caches).
With CPython's defaults (a generation-0 collection every 700 net allocations of containers,
and a full collection whenever the old generation grew by a quarter) the collector walked
that heap again and again: ~5% of all node CPU at saturation (``gc_collect_main``,
``visit_decref``, ``visit_reachable`` in the profile of docs/benchmarks.md). So, after
start-up:

* ``gc.freeze()`` moves every object alive then into the permanent generation, which no
  collection walks (the start-up heap: it is not garbage, and walking it found nothing);
* the generation-0 threshold rises from 700 to :data:`GEN0_THRESHOLD`, so the young objects
  of a request or a batch have died (by reference counting) before a collection would walk them.

Nothing is switched off: every generation is still collected, only less often, so garbage
cycles made after start-up (an exception's traceback, a closed connection's protocol objects)
are freed as before. What waits for a collection is bounded: at most ``GEN0_THRESHOLD`` net
new containers (a few MiB) between young collections, and the older generations keep
CPython's own thresholds. Objects frozen at start-up that later become garbage are not
collected (reference counting still frees those without cycles); the start-up heap holds
none that are meant to die. A block run in a contained worker (``--contained``,
tfnode.runtime.worker) unfreezes the heap after its fork, which returns it to ordinary
collection: correct, only the saving is lost for the rest of that run.

``TFNODE_GC=default`` in the environment leaves CPython's defaults (to compare, or to rule
the tuning out when chasing memory).
"""

from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger(__name__)

#: Net new containers between generation-0 collections (CPython's default: 700).
GEN0_THRESHOLD = 50_000
ENV = "TFNODE_GC"


def tune_after_start() -> bool:
    """Freeze what start-up built and raise the young generation's threshold (see the module
    docstring). Returns False when ``TFNODE_GC=default`` asks for CPython's defaults."""
    if os.environ.get(ENV, "") == "default":
        log.info("%s=default: the cyclic GC keeps CPython's defaults", ENV)
        return False
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    log.debug("cyclic GC: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())
    return True
