//! Simulator runs: happy path, faults, crashes, partitions, Twins, and planted bugs.
use crate::safety::Faults;
use crate::sim::twins::{run_twins, scenario, TwinsConfig};
use crate::sim::{simulate, Partition, SimConfig, SimReport};

#[test]
fn happy_path_commits_every_round() {
    let r = simulate(SimConfig::new(4, 1));
    assert_eq!(r.safety_violations, 0);
    assert!(!r.liveness_failure, "{r:?}");
    assert!(r.min_height >= 20, "{r:?}");
    // Two-chain: a block commits when its child is certified, about 2 rounds later.
    assert!(r.latency_rounds <= 2.5, "{r:?}");
    assert_eq!(r.evidence, 0);
    assert_eq!(r.invalid, 0);
}

#[test]
fn same_seed_same_run() {
    let mut c = SimConfig::new(4, 7);
    c.drop_per_mille = 100;
    c.heal_ms = 2000;
    let (a, b) = (simulate(c.clone()), simulate(c));
    assert_eq!((a.messages, a.rounds, a.max_height, a.end_ms), (b.messages, b.rounds, b.max_height, b.end_ms));
}

#[test]
fn drops_and_reordering_heal() {
    for seed in 0..20 {
        let mut c = SimConfig::new(4, seed);
        c.drop_per_mille = 200;
        c.delay_ms = (1, 60);
        c.heal_ms = 3_000;
        c.target_height = 30;
        let r = simulate(c);
        assert_eq!(r.safety_violations, 0, "seed {seed}");
        assert!(!r.liveness_failure, "seed {seed}: {r:?}");
        assert_eq!((r.honest_halts, r.commit_order_errors), (0, 0), "seed {seed}: {r:?}");
    }
}

#[test]
fn partition_heals() {
    // {0,1} | {2,3}: no quorum on either side for 2 s, then the network heals.
    let mut c = SimConfig::new(4, 3);
    c.partitions.push(Partition { from_ms: 200, until_ms: 2_200, groups: vec![vec![0, 1], vec![2, 3]] });
    c.heal_ms = 2_200;
    c.target_height = 25;
    let r = simulate(c);
    eprintln!("{r:?}");
    assert_eq!(r.safety_violations, 0);
    assert!(!r.liveness_failure, "{r:?}");
}

#[test]
fn crash_and_restart_from_persisted_safety_data() {
    for seed in 0..10 {
        let mut c = SimConfig::new(4, seed);
        // Node 1 crashes at 150 ms and restarts at 900 ms with only its safety data; node
        // 2 crashes for good at 1500 ms. Three of four still make a quorum.
        c.crashes = vec![(1, 150, 900), (2, 1_500, u64::MAX)];
        c.target_height = 40;
        let r = simulate(c);
        assert_eq!(r.safety_violations, 0, "seed {seed}");
        assert!(!r.liveness_failure, "seed {seed}: {r:?}");
        assert_eq!((r.honest_halts, r.commit_order_errors), (0, 0), "seed {seed}: {r:?}");
    }
}

#[test]
fn reputation_skips_a_crashed_leader() {
    let run = |reputation| {
        let mut c = SimConfig::new(4, 5);
        c.crashes = vec![(3, 0, u64::MAX)];
        c.reputation = reputation;
        c.target_height = 60;
        simulate(c)
    };
    let (with, without) = (run(true), run(false));
    eprintln!("with {with:?}\nwithout {without:?}");
    assert!(!with.liveness_failure && !without.liveness_failure);
    // Without reputation every 4th round times out; with it, only probation rounds do.
    assert!(with.end_ms * 2 < without.end_ms, "with {} ms, without {} ms", with.end_ms, without.end_ms);
}

/// Issue 13: with one validator of four crashed the others keep most of the healthy block
/// rate, also when it crashes mid-run (the skip starts a few rounds after its first missed
/// turn), counting the probation and anchor turns it keeps getting. Simulated time, so the
/// ratio is exact and repeatable.
#[test]
fn one_crashed_validator_keeps_most_of_the_block_rate() {
    let run = |crash: Option<u64>| {
        let mut c = SimConfig::new(4, 11);
        c.crashes = crash.map(|at| vec![(3, at, u64::MAX)]).unwrap_or_default();
        c.target_height = 300;
        simulate(c)
    };
    let healthy = run(None);
    for at in [500, 0] {
        let down = run(Some(at));
        assert!(!down.liveness_failure, "{down:?}");
        assert_eq!(down.safety_violations, 0);
        let ratio = healthy.end_ms as f64 / down.end_ms as f64;
        eprintln!("crash at {at} ms: healthy {} ms, one down {} ms for 300 blocks: ratio {ratio:.2}", healthy.end_ms, down.end_ms);
        // The aim is 0.7. These rules reach 1.01 (mid-run: three make a quorum a little
        // faster than four) and 0.94 (from the start); before the skip started one round
        // earlier, dropped the every-8th-pass anchor and gave a validator not seen alive a
        // turn only every 64 passes: 0.65 and 0.58; the first reputation rule 0.37.
        assert!(ratio >= 0.85, "crash at {at} ms: ratio {ratio:.2}");
    }
}

#[test]
fn twins_sample_is_safe_and_live() {
    let s = run_twins(&TwinsConfig::new(300, 42));
    eprintln!("{s:?}");
    assert_eq!(s.scenarios, 300);
    assert_eq!(s.safety_violations, 0, "first violation at scenario {:?}", s.first_violation);
    assert_eq!(s.liveness_failures, 0, "failed: {:?}", s.liveness_failed);
    assert_eq!(s.integrity_failures, 0, "failed: {:?}", s.integrity_failed);
}

#[test]
fn twins_enumeration_of_round_one() {
    // Every partition x leader of round 1 (64), each with 4 choices for round 2; the
    // example `twins -- N 0 2 enumerate` walks further.
    let mut cfg = TwinsConfig::new(64 * 4, 0);
    cfg.enumerate = true;
    cfg.threads = 2;
    let s = run_twins(&cfg);
    assert_eq!(s.safety_violations, 0, "first violation at scenario {:?}", s.first_violation);
    assert_eq!(s.liveness_failures, 0);
}

/// Planted bugs must be caught: this proves the checker can fail.
#[test]
fn planted_bugs_are_caught() {
    for (name, _) in Faults::NAMES {
        let mut cfg = TwinsConfig::new(1, 1);
        cfg.faults = Faults::by_name(name).unwrap();
        // Scan scenarios in order until the checker trips (seed 1 trips within ~300).
        let caught = (0..2_000).find(|i| simulate(scenario(&cfg, *i)).safety_violations > 0);
        eprintln!("{name}: first violation at scenario {caught:?}");
        assert!(caught.is_some(), "{name} not caught");
        // The same scenarios without the bug are safe.
        cfg.faults = Faults::default();
        assert_eq!(simulate(scenario(&cfg, caught.unwrap())).safety_violations, 0);
    }
}

/// `TWINS_SCENARIOS=1000000 cargo test --release -p tfnode-consensus twins_many -- --ignored`
#[test]
#[ignore]
fn twins_many() {
    let n = std::env::var("TWINS_SCENARIOS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut cfg = TwinsConfig::new(n, std::env::var("TWINS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0));
    cfg.threads = 2;
    let t = std::time::Instant::now();
    let s = run_twins(&cfg);
    eprintln!("{s:?} in {:?}", t.elapsed());
    assert_eq!(s.safety_violations, 0, "replay with SCEN=i: {:?}", s.safety_failed);
    assert_eq!(s.integrity_failures, 0, "replay with SCEN=i: {:?}", s.integrity_failed);
    assert_eq!(s.liveness_failures, 0, "replay with SCEN=i: {:?}", s.liveness_failed);
}

/// Replays one Twins scenario with its trace:
/// `SCEN=i SEED=s ROUNDS=r cargo test -p tfnode-consensus replay -- --ignored --nocapture`
/// (`python -m tfnode.sim --replay i --seed s --rounds r --trace` prints the same).
#[test]
#[ignore]
fn replay_twins_scenario() {
    let var = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let i = var("SCEN", 0);
    let mut cfg = TwinsConfig::new(1, var("SEED", 42));
    cfg.rounds = var("ROUNDS", 7) as usize;
    let mut sc = crate::sim::twins::scenario(&cfg, i);
    sc.trace = true;
    eprintln!("groups {:?}\nleaders {:?}", sc.round_groups, sc.leader_script);
    let r = simulate(sc);
    for l in &r.trace {
        eprintln!("{l}");
    }
    eprintln!("{:?}", SimReport { trace: Vec::new(), ..r });
}

/// Everything at once: drops, long delays, a partition, a crash with restart, and on even
/// seeds an epoch change.
fn chaos(seed: u64) -> crate::sim::SimReport {
    chaos_with(seed, true)
}

/// `restore_election`: false restarts nodes with no election history, as a node restored
/// from a snapshot starts.
fn chaos_with(seed: u64, restore_election: bool) -> crate::sim::SimReport {
    let mut c = SimConfig::new(4, seed);
    c.restore_election = restore_election;
    let mut rng = crate::sim::Rng::new(seed);
    c.drop_per_mille = 100;
    c.delay_ms = (1, 40);
    c.heal_ms = 4_000;
    let cut = 100 + rng.below(1_000);
    c.partitions.push(Partition { from_ms: cut, until_ms: cut + 1_000, groups: vec![vec![0, 2], vec![1, 3]] });
    c.crashes = vec![(rng.below(4) as usize, rng.below(2_000), 2_000 + rng.below(2_000))];
    if seed.is_multiple_of(2) {
        c.reconfig_at = Some(3 + rng.below(10));
    }
    c.target_height = 40;
    c.max_time_ms = 120_000;
    simulate(c)
}

#[test]
fn chaos_seeds() {
    for seed in 100..140 {
        let r = chaos(seed);
        assert_eq!(r.safety_violations, 0, "seed {seed}");
        assert!(!r.liveness_failure, "seed {seed}: {r:?}");
        assert_eq!((r.honest_halts, r.commit_order_errors), (0, 0), "seed {seed}: {r:?}");
    }
}

/// Restarted nodes without election history (as one restored from a snapshot starts) judge
/// absence differently from the others until the stall rule makes every leader plain
/// round-robin: without that rule (and an anchor pass only every 64th), 11 of 2 000
/// `chaos_many` seeds stalled for good (263, 507, 537, 559, 905 among them: the quorum's
/// votes went to two different leaders every round).
#[test]
fn chaos_with_blank_restarts_stays_live() {
    for seed in [263, 507, 537, 559, 905, 100, 101, 102] {
        let r = chaos_with(seed, false);
        assert_eq!(r.safety_violations, 0, "seed {seed}");
        assert!(!r.liveness_failure, "seed {seed}: {r:?}");
        assert_eq!((r.honest_halts, r.commit_order_errors), (0, 0), "seed {seed}: {r:?}");
    }
}

/// `CHAOS_SEEDS=5000 cargo test --release -p tfnode-consensus chaos_many -- --ignored`
/// (`CHAOS_BLANK_RESTART=1`: restarted nodes reload no election history)
#[test]
#[ignore]
fn chaos_many() {
    let n: u64 = std::env::var("CHAOS_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let first: u64 = std::env::var("CHAOS_FIRST").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let restore = std::env::var("CHAOS_BLANK_RESTART").is_err();
    let bad: Vec<u64> = (first..first + n)
        .filter(|s| {
            let r = chaos_with(*s, restore);
            let bad = r.safety_violations > 0 || r.liveness_failure || r.honest_halts > 0 || r.commit_order_errors > 0;
            if bad {
                eprintln!("seed {s}: {r:?}");
            }
            bad
        })
        .collect();
    assert!(bad.is_empty(), "failing seeds: {bad:?}");
}

/// Every validator is killed at once and restarts from its safety data alone: the cluster
/// must resume (each node must know the QC or TC that let it into its last voted round).
#[test]
fn whole_cluster_restart() {
    for seed in 0..5 {
        let mut c = SimConfig::new(4, seed);
        let t = 300 + 37 * seed;
        c.crashes = (0..4).map(|i| (i, t, t + 50 + 10 * i as u64)).collect();
        c.target_height = 40;
        let r = simulate(c);
        assert_eq!(r.safety_violations, 0, "seed {seed}");
        assert!(!r.liveness_failure, "seed {seed}: {r:?}");
        assert_eq!((r.honest_halts, r.commit_order_errors), (0, 0), "seed {seed}: {r:?}");
    }
}

/// Signature work per committed block per node in a calm run: the figure behind the
/// benchmark's CPU cost (about 1 signature and 4 to 5 verifications).
#[test]
fn signature_work_per_block() {
    use crate::crypto::insecure_test::{TestSigner, TestVerifier};
    use crate::crypto::{Digest, Signature, Signer, Verifier};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    static SIGNS: AtomicU64 = AtomicU64::new(0);
    static VERIFIES: AtomicU64 = AtomicU64::new(0);
    struct S(TestSigner);
    impl Signer for S {
        fn sign(&self, d: &Digest) -> Signature {
            SIGNS.fetch_add(1, Relaxed);
            self.0.sign(d)
        }
        fn public_key(&self) -> Vec<u8> {
            self.0.public_key()
        }
    }
    struct V;
    impl Verifier for V {
        fn verify(&self, pk: &[u8], d: &Digest, s: &Signature) -> bool {
            VERIFIES.fetch_add(1, Relaxed);
            TestVerifier.verify(pk, d, s)
        }
    }
    struct Counting;
    impl crate::sim::SimCrypto for Counting {
        fn signer(&self, id: u32) -> Box<dyn Signer> {
            Box::new(S(TestSigner::for_node(id)))
        }
        fn verifier(&self) -> Arc<dyn Verifier> {
            Arc::new(V)
        }
    }
    let mut c = SimConfig::new(4, 1);
    c.crypto = Arc::new(Counting);
    c.target_height = 200;
    let r = simulate(c);
    let per = |n: u64| n as f64 / (r.min_height as f64 * 4.0);
    let (s, v) = (per(SIGNS.load(Relaxed)), per(VERIFIES.load(Relaxed)));
    eprintln!("per block per node: {s:.2} signatures, {v:.2} verifications");
    assert!(s < 1.5 && v < 5.5, "{s} signatures, {v} verifications");
}

/// Twins under an asynchronous network: the twin pair plus drops, long delays and a
/// time-window partition, over many seeds.
#[test]
fn twins_with_asynchrony() {
    for seed in 200..230 {
        let mut c = SimConfig::new(4, seed);
        c.twins = 1;
        c.reputation = seed % 2 == 0;
        c.drop_per_mille = 150;
        c.delay_ms = (1, 80);
        c.heal_ms = 3_000;
        c.partitions.push(Partition { from_ms: 500, until_ms: 1_500, groups: vec![vec![0, 1, 2], vec![3, 4]] });
        c.target_height = 25;
        c.max_time_ms = 120_000;
        let r = simulate(c);
        assert_eq!(r.safety_violations, 0, "seed {seed}");
        assert!(!r.liveness_failure, "seed {seed}: {r:?}");
        assert_eq!((r.honest_halts, r.commit_order_errors), (0, 0), "seed {seed}: {r:?}");
    }
}

/// A node that restarts while another validator is down reloads its election history from
/// its ledger and skips the absent leader at once, as the others do; restarted blank it
/// chooses other leaders than they do (and its vote is needed) until the stall rule
/// makes them all plain round-robin.
#[test]
fn a_restart_reloads_the_election_history() {
    let run = |restore: bool| {
        let mut c = SimConfig::new(4, 11);
        c.crashes = vec![(3, 0, u64::MAX), (1, 1_500, 1_600)];
        c.restore_election = restore;
        c.target_height = 300;
        simulate(c)
    };
    let (with, blank) = (run(true), run(false));
    for r in [&with, &blank] {
        assert!(!r.liveness_failure && r.safety_violations == 0, "{r:?}");
    }
    eprintln!("300 blocks: history reloaded {} ms, restarted blank {} ms", with.end_ms, blank.end_ms);
    assert!(with.end_ms < blank.end_ms, "reloaded {} ms, blank {} ms", with.end_ms, blank.end_ms);
}
