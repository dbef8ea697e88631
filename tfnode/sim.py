"""Deterministic consensus simulator and Twins runner (the Rust core does the work).

    python -m tfnode.sim --validators 4 --twins 1 --rounds 10 --scenarios N --seed S \
        [--first I] [--inject-bug NAME] [--threads T] [--json]
    python -m tfnode.sim --replay I --validators 4 --twins 1 --rounds 10 --seed S [--trace] [--json]

Each scenario is drawn from the seed and its index alone: for each of the first ``--rounds``
rounds a split of the instances into at most two groups and a leader; then the network
heals. Scenario I is the same whatever ``--threads`` is, and a run reports the indices of
the scenarios that failed (the lowest 100 of each kind), so ``--replay I`` with the same
seed, validators, twins, rounds and bug runs one of them alone and prints its parameters,
its outcome and, with ``--trace``, what each instance did.

After every scenario the checker looks for two honest validators committing different
blocks at one height (safety) and for honest validators that stop committing once the
network healed (liveness; docs/consensus.md states the rule). ``--inject-bug`` plants a
known bug (vote_twice, skip_lock_check, commit_one_chain) to show the checker catches it.
An honest validator that halts (its execution diverged) or commits applied out of height
order count as integrity failures. The exit status is 1 when a safety violation or an
integrity failure was found without ``--inject-bug``, so the command can gate CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tfnode import _core


def _native(name: str) -> Any:
    if not hasattr(_core, name):
        raise RuntimeError("tfnode._core was built without the consensus bindings (core_rs/py/src/consensus.rs)")
    return getattr(_core, name)


def simulate(
    validators: int = 4,
    twins: int = 1,
    rounds: int = 10,
    scenarios: int = 100,
    seed: int = 0,
    inject_bug: str | None = None,
    threads: int = 1,
    first: int = 0,
) -> dict[str, Any]:
    """Run scenarios ``first..first + scenarios``; returns scenarios, safety_violations,
    liveness_failures, integrity_failures, safety_failed, liveness_failed and integrity_failed
    (failing indices), commits,
    mean_latency_rounds, evidence, first_violation, elapsed_s and the inputs."""
    return dict(
        _native("simulate")(
            validators=validators,
            twins=twins,
            rounds=rounds,
            scenarios=scenarios,
            seed=seed,
            inject_bug=inject_bug,
            threads=threads,
            first=first,
        )
    )


def replay(
    index: int,
    validators: int = 4,
    twins: int = 1,
    rounds: int = 10,
    seed: int = 0,
    inject_bug: str | None = None,
    trace: bool = False,
) -> dict[str, Any]:
    """Run scenario ``index`` alone; returns its parameters (twinned, round_groups, leaders,
    heal_ms, target_height, ...) and outcome (safety_violations, liveness_failure, owed_height,
    honest_halts, commit_order_errors, heights; with ``trace``, what each instance did)."""
    return dict(
        _native("twins_scenario")(
            index,
            validators=validators,
            twins=twins,
            rounds=rounds,
            seed=seed,
            inject_bug=inject_bug,
            trace=trace,
        )
    )


def _print_replay(r: dict[str, Any]) -> None:
    print(
        f"scenario {r['index']} of seed {r['seed']}: {r['validators']} validators, twinned {r['twinned']}, "
        f"{r['rounds']} scripted rounds; instance -> validator {r['instance_validator']}"
    )
    for rnd, (groups, leader) in enumerate(zip(r["round_groups"], r["leaders"], strict=True)):
        print(f"  round {rnd:>3}: leader {leader}, groups {groups}")
    print(
        f"  heals at {r['heal_ms']} ms; each honest validator owes height {r['owed_height']} by {r['max_time_ms']} ms"
    )
    keys = ("safety_violations", "liveness_failure", "honest_halts", "commit_order_errors", "commits_by_instance")
    for k in (*keys, "position_by_instance", "end_ms"):
        print(f"  {k}: {r[k]}")
    for line in r["trace"]:
        print(f"    {line}")


def _print_replay_hints(r: dict[str, Any]) -> None:
    """On stderr (stdout stays one JSON object): the command that replays each of the first
    few failing scenarios alone."""
    bug = f" --inject-bug {r['inject_bug']}" if r["inject_bug"] else ""
    base = f"python -m tfnode.sim --validators {r['validators']} --twins {r['twins']} --rounds {r['rounds']}"
    for kind in ("safety", "liveness", "integrity"):
        for i in r[f"{kind}_failed"][:5]:
            print(f"{kind} failure: {base} --seed {r['seed']}{bug} --replay {i} --trace", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tfnode.sim", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--twins", type=int, default=1, help="validators run twice with one key (byzantine)")
    p.add_argument("--rounds", type=int, default=10, help="rounds with scripted partitions and leaders")
    p.add_argument("--scenarios", type=int, default=100)
    p.add_argument("--first", type=int, default=0, help="index of the first scenario to run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inject-bug", default=None, help="planted bug: " + ", ".join(getattr(_core, "CONSENSUS_BUGS", [])))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--replay", type=int, default=None, metavar="I", help="run scenario I alone and describe it")
    p.add_argument("--trace", action="store_true", help="with --replay: what each instance did, in time order")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    for name in ("scenarios", "first", "seed", "threads", "replay"):
        v = getattr(a, name)
        if v is not None and not 0 <= v < 2**64:
            print(f"error: --{name} must be in 0..2**64, got {v}", file=sys.stderr)
            return 2
    try:
        if a.replay is not None:
            r = replay(a.replay, a.validators, a.twins, a.rounds, a.seed, a.inject_bug, a.trace)
            failed = r["safety_violations"] + r["honest_halts"] + r["commit_order_errors"] > 0
        else:
            r = simulate(a.validators, a.twins, a.rounds, a.scenarios, a.seed, a.inject_bug, a.threads, a.first)
            failed = r["safety_violations"] + r["integrity_failures"] > 0
    except (ValueError, RuntimeError, OverflowError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.replay is None:
        _print_replay_hints(r)
    if a.json:
        print(json.dumps(r, sort_keys=True))
    elif a.replay is not None:
        _print_replay(r)
    else:
        for k in sorted(r):
            print(f"{k:>20}: {r[k]}")
    return 1 if failed and not a.inject_bug else 0


if __name__ == "__main__":
    sys.exit(main())
