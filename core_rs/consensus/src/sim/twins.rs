//! Twins (Bano et al., "Twins: BFT systems made robust"): validator 0 runs two instances
//! with one key; each scenario picks, for each of the first `rounds` rounds, a partition
//! of the instances into at most two groups and a leader. Scenario `i` of seed `s` is
//! drawn from `Rng::derive(s, i)`, so any scenario a run reports can be replayed alone.
//!
//! With n = 4 and one twin there are 5 instances, 16 two-way partitions and 4 leaders:
//! 64 choices per round, 64^7 ≈ 4.4e12 scenarios over 7 rounds, so we sample.
use std::sync::Arc;

use super::{simulate, Rng, SimConfig, SimCrypto, TestCrypto};
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

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwinsSummary {
    pub scenarios: u64,
    /// Scenarios with at least one safety violation.
    pub safety_violations: u64,
    pub liveness_failures: u64,
    /// Sum over scenarios of the lowest honest committed height.
    pub commits: u64,
    pub mean_latency_rounds: f64,
    pub evidence: u64,
    /// Lowest scenario index that broke safety, to replay with `scenario(cfg, i)`.
    pub first_violation: Option<u64>,
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

fn run_range(cfg: &TwinsConfig, from: u64, to: u64) -> (TwinsSummary, f64) {
    let mut s = TwinsSummary::default();
    let mut lat = 0.0;
    for i in from..to {
        let r = simulate(scenario(cfg, i));
        s.scenarios += 1;
        if r.safety_violations > 0 {
            s.safety_violations += 1;
            s.first_violation = Some(s.first_violation.map_or(i, |f| f.min(i)));
        }
        s.liveness_failures += r.liveness_failure as u64;
        s.commits += r.min_height;
        s.evidence += r.evidence;
        lat += r.latency_rounds;
    }
    (s, lat)
}

/// Runs scenarios `first..first + scenarios` on `cfg.threads` threads; the result does not depend
/// on the thread count.
pub fn run_twins(cfg: &TwinsConfig) -> TwinsSummary {
    let threads = cfg.threads.max(1) as u64;
    let chunk = cfg.scenarios.div_ceil(threads);
    let parts: Vec<(TwinsSummary, f64)> = std::thread::scope(|sc| {
        let at = |k: u64| cfg.first + (k * chunk).min(cfg.scenarios);
        let hs: Vec<_> = (0..threads).map(|t| sc.spawn(move || run_range(cfg, at(t), at(t + 1)))).collect();
        hs.into_iter().map(|h| h.join().expect("twins thread")).collect()
    });
    let mut total = TwinsSummary::default();
    let mut lat = 0.0;
    for (p, l) in parts {
        total.scenarios += p.scenarios;
        total.safety_violations += p.safety_violations;
        total.liveness_failures += p.liveness_failures;
        total.commits += p.commits;
        total.evidence += p.evidence;
        lat += l;
        total.first_violation = match (total.first_violation, p.first_violation) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    total.mean_latency_rounds = if total.scenarios > 0 { lat / total.scenarios as f64 } else { 0.0 };
    total
}
