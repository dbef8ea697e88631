//! Twins (Bano et al., "Twins: BFT systems made robust"): validator 0 runs two instances
//! with one key; each scenario picks, for each of the first `rounds` rounds, a partition
//! of the instances into at most two groups and a leader. Scenario `i` of seed `s` is
//! drawn from `Rng::derive(s, i)`, so any scenario a run reports can be replayed alone.
//!
//! With n = 4 and one twin there are 5 instances, 16 two-way partitions and 4 leaders:
//! 64 choices per round, 64^7 ≈ 4.4e12 scenarios over 7 rounds, so we sample.
use std::sync::Arc;

use super::{simulate, Rng, SimConfig, SimCrypto, SimReport, TestCrypto};
use crate::safety::Faults;
use crate::types::NodeId;

#[derive(Clone)]
pub struct TwinsConfig {
    pub validators: usize,
    pub twins: usize,
    pub rounds: usize,
    pub scenarios: u64,
    pub seed: u64,
    pub faults: Faults,
    pub threads: usize,
    /// Index of the first scenario (scenarios `first..first + scenarios` run).
    pub first: u64,
    /// Enumerate instead of sampling: scenario i is i written in base (partitions x
    /// leaders), first round least significant, so 0..64^k covers every choice for the
    /// first k rounds (n = 4, one twin); later rounds are all-connected, leader round-robin.
    pub enumerate: bool,
    pub crypto: Arc<dyn SimCrypto>,
}

impl TwinsConfig {
    pub fn new(scenarios: u64, seed: u64) -> Self {
        TwinsConfig {
            validators: 4,
            twins: 1,
            rounds: 7,
            scenarios,
            seed,
            faults: Faults::default(),
            threads: 1,
            first: 0,
            enumerate: false,
            crypto: Arc::new(TestCrypto),
        }
    }
}

/// How many failing scenario indices a summary lists (of each kind); the counts are exact.
pub const MAX_LISTED: usize = 100;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwinsSummary {
    pub scenarios: u64,
    /// Scenarios with at least one safety violation.
    pub safety_violations: u64,
    pub liveness_failures: u64,
    /// Scenarios where an honest instance halted on a diverged state root, or commits were
    /// applied out of height order: bugs whatever the network did.
    pub integrity_failures: u64,
    /// Sum over scenarios of the lowest honest committed height.
    pub commits: u64,
    /// Mean over every honest commit of every scenario (integer sums below, so the figure
    /// does not depend on how scenarios were split between threads).
    pub mean_latency_rounds: f64,
    pub latency_sum: u64,
    pub latency_commits: u64,
    pub evidence: u64,
    /// Lowest scenario index that broke safety, to replay with `scenario(cfg, i)`.
    pub first_violation: Option<u64>,
    /// The lowest `MAX_LISTED` indices of scenarios that broke safety / liveness, ascending.
    pub safety_failed: Vec<u64>,
    pub liveness_failed: Vec<u64>,
    pub integrity_failed: Vec<u64>,
}

impl TwinsSummary {
    /// Adds the summary of the scenarios that follow ours (indices above all of ours).
    pub fn append(&mut self, next: TwinsSummary) {
        self.scenarios += next.scenarios;
        self.safety_violations += next.safety_violations;
        self.liveness_failures += next.liveness_failures;
        self.integrity_failures += next.integrity_failures;
        self.commits += next.commits;
        self.latency_sum += next.latency_sum;
        self.latency_commits += next.latency_commits;
        self.evidence += next.evidence;
        self.first_violation = self.first_violation.or(next.first_violation);
        let lists = [
            (&mut self.safety_failed, next.safety_failed),
            (&mut self.liveness_failed, next.liveness_failed),
            (&mut self.integrity_failed, next.integrity_failed),
        ];
        for (mine, theirs) in lists {
            mine.extend(theirs);
            mine.truncate(MAX_LISTED);
        }
        self.mean_latency_rounds = if self.latency_commits > 0 { self.latency_sum as f64 / self.latency_commits as f64 } else { 0.0 };
    }
}

/// Every split of `k` instances into one or two groups (instance 0 always in the first).
pub fn two_way_partitions(k: usize) -> Vec<Vec<Vec<usize>>> {
    (0..1u32 << (k - 1))
        .map(|mask| {
            let (mut a, mut b) = (vec![0], vec![]);
            for i in 1..k {
                if mask >> (i - 1) & 1 == 0 {
                    a.push(i)
                } else {
                    b.push(i)
                }
            }
            if b.is_empty() {
                vec![a]
            } else {
                vec![a, b]
            }
        })
        .collect()
}

/// The simulation of scenario `i`.
pub fn scenario(cfg: &TwinsConfig, i: u64) -> SimConfig {
    let k = cfg.validators + cfg.twins;
    let parts = two_way_partitions(k);
    let mut rng = Rng::derive(cfg.seed, i);
    let mut sim = SimConfig::new(cfg.validators, rng.next_u64());
    sim.twins = cfg.twins;
    sim.faults = cfg.faults;
    sim.reputation = false;
    sim.delay_ms = (1, 5);
    sim.base_timeout_ms = 40;
    // Short, nearly flat timers so the scripted rounds pass quickly; the partitions end
    // after about two timeouts per scripted round.
    sim.max_backoff_exponent = 1;
    sim.heal_ms = 160 * (cfg.rounds as u64 + 1);
    let all: Vec<usize> = (0..k).collect();
    sim.round_groups.push(vec![all]);
    sim.leader_script.push(0);
    let (np, nl) = (parts.len() as u64, cfg.validators as u64);
    let mut digits = i;
    for _ in 0..cfg.rounds {
        let (p, l) = if cfg.enumerate {
            let d = digits % (np * nl);
            digits /= np * nl;
            (d % np, d / np)
        } else {
            (rng.below(np), rng.below(nl))
        };
        sim.round_groups.push(parts[p as usize].clone());
        sim.leader_script.push(l as NodeId);
    }
    // Commits up to height `rounds` could all come from the scripted rounds; asking for
    // three more proves the honest nodes kept going once the network healed.
    sim.target_height = cfg.rounds as u64 + 3;
    sim.max_time_ms = 30_000;
    sim.crypto = cfg.crypto.clone();
    sim
}

/// Runs scenario `i` alone; a run over many scenarios gets exactly this report for it.
pub fn run_scenario(cfg: &TwinsConfig, i: u64) -> SimReport {
    simulate(scenario(cfg, i))
}

fn run_range(cfg: &TwinsConfig, from: u64, to: u64) -> TwinsSummary {
    let mut s = TwinsSummary::default();
    for i in from..to {
        let r = run_scenario(cfg, i);
        let mut one = TwinsSummary {
            scenarios: 1,
            commits: r.min_height,
            evidence: r.evidence,
            latency_sum: r.latency_sum,
            latency_commits: r.latency_commits,
            ..TwinsSummary::default()
        };
        if r.safety_violations > 0 {
            (one.safety_violations, one.first_violation, one.safety_failed) = (1, Some(i), vec![i]);
        }
        if r.liveness_failure {
            (one.liveness_failures, one.liveness_failed) = (1, vec![i]);
        }
        if r.honest_halts > 0 || r.commit_order_errors > 0 {
            (one.integrity_failures, one.integrity_failed) = (1, vec![i]);
        }
        s.append(one);
    }
    s
}

/// Runs scenarios `first..first + scenarios` on `cfg.threads` threads. Each scenario is a
/// function of (seed, index, validators, twins, rounds, faults) alone and the threads' parts
/// are joined in index order, so the summary does not depend on the thread count.
pub fn run_twins(cfg: &TwinsConfig) -> TwinsSummary {
    let threads = cfg.threads.max(1) as u64;
    let chunk = cfg.scenarios.div_ceil(threads);
    let parts: Vec<TwinsSummary> = std::thread::scope(|sc| {
        let at = |k: u64| cfg.first + (k * chunk).min(cfg.scenarios);
        let hs: Vec<_> = (0..threads).map(|t| sc.spawn(move || run_range(cfg, at(t), at(t + 1)))).collect();
        hs.into_iter().map(|h| h.join().expect("twins thread")).collect()
    });
    let mut total = TwinsSummary::default();
    for p in parts {
        total.append(p);
    }
    total
}
