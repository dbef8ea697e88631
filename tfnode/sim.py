"""Deterministic consensus simulator and Twins runner (the Rust core does the work).

    python -m tfnode.sim --validators 4 --twins 1 --rounds 10 --scenarios N --seed S \
        [--inject-bug NAME] [--threads T] [--json]

Each scenario is drawn from the seed: for each of the first ``--rounds`` rounds a split of
the instances into at most two groups and a leader; then the network heals. After every
scenario the checker looks for two honest validators committing different blocks at one
height (safety) and for honest validators that stop committing once the network healed
(liveness). ``--inject-bug`` plants a known bug (vote_twice, skip_lock_check,
commit_one_chain) to show the checker catches it. The exit status is 1 when a safety
violation was found without ``--inject-bug``, so the command can gate CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tfnode import _core


def simulate(
    validators: int = 4,
    twins: int = 1,
    rounds: int = 10,
    scenarios: int = 100,
    seed: int = 0,
    inject_bug: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Run seeded scenarios; returns scenarios, safety_violations, liveness_failures,
    commits, mean_latency_rounds, evidence, first_violation, elapsed_s and the inputs."""
    if not hasattr(_core, "simulate"):
        raise RuntimeError("tfnode._core was built without the consensus bindings (core_rs/py/src/consensus.rs)")
    return dict(
        _core.simulate(
            validators=validators,
            twins=twins,
            rounds=rounds,
            scenarios=scenarios,
            seed=seed,
            inject_bug=inject_bug,
            threads=threads,
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tfnode.sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--twins", type=int, default=1, help="validators run twice with one key (byzantine)")
    p.add_argument("--rounds", type=int, default=10, help="rounds with scripted partitions and leaders")
    p.add_argument("--scenarios", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inject-bug", default=None, help="planted bug: " + ", ".join(getattr(_core, "CONSENSUS_BUGS", [])))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    try:
        r = simulate(a.validators, a.twins, a.rounds, a.scenarios, a.seed, a.inject_bug, a.threads)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r, sort_keys=True))
    else:
        for k in sorted(r):
            print(f"{k:>20}: {r[k]}")
    return 1 if r["safety_violations"] and not a.inject_bug else 0


if __name__ == "__main__":
    sys.exit(main())
