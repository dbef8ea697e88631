//! Many Twins scenarios outside the test harness, with progress on stderr:
//!   cargo run --release -p tfnode-consensus --features sim --example twins -- 1000000 0 2 [ROUNDS [FIRST]] [enumerate]
//! (scenarios, seed, threads, scripted rounds (default 7), first scenario index (default 0);
//! `enumerate` walks the scenario space in order instead of sampling). Prints one JSON
//! object with the indices of failing scenarios; exit status 1 on a safety violation or an
//! integrity failure (an honest halt, commits applied out of order).
//! Any index it names replays alone: `python -m tfnode.sim --replay I --seed S --rounds R`.
use std::time::Instant;

use tfnode_consensus::sim::twins::{run_twins, TwinsConfig, TwinsSummary};

fn main() {
    let a: Vec<u64> = std::env::args().skip(1).filter_map(|x| x.parse().ok()).collect();
    let arg = |k: usize, d: u64| a.get(k).copied().unwrap_or(d);
    let (n, seed, threads, rounds, first) = (arg(0, 1_000_000), arg(1, 0), arg(2, 2), arg(3, 7), arg(4, 0));
    let t = Instant::now();
    // Chunks of 10k so a long run shows progress and a failure is reported early.
    let mut total = TwinsSummary::default();
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(10_000);
        let mut cfg = TwinsConfig::new(k, seed);
        cfg.threads = threads as usize;
        cfg.rounds = rounds as usize;
        // Scenario indices continue across chunks: chunk c covers first+done..first+done+k.
        cfg.first = first + done;
        cfg.enumerate = std::env::args().any(|a| a == "enumerate");
        let s = run_twins(&cfg);
        for i in s.safety_failed.iter().chain(&s.liveness_failed).chain(&s.integrity_failed) {
            let (a, b, c) = (s.safety_failed.contains(i), s.liveness_failed.contains(i), s.integrity_failed.contains(i));
            eprintln!("scenario {i} failed: safety {a}, liveness {b}, integrity {c}");
        }
        total.append(s);
        done += k;
        eprintln!(
            "{done}/{n} scenarios, {} safety violations, {} liveness failures, {} integrity failures, {:.0}/s",
            total.safety_violations,
            total.liveness_failures,
            total.integrity_failures,
            done as f64 / t.elapsed().as_secs_f64()
        );
    }
    println!(
        "{{\"bench\":\"twins_many\",\"scenarios\":{done},\"first\":{first},\"seed\":{seed},\"rounds\":{rounds},\"safety_violations\":{},\"liveness_failures\":{},\"safety_failed\":{:?},\"liveness_failed\":{:?},\"integrity_failures\":{},\"integrity_failed\":{:?},\"commits\":{},\"wall_s\":{:.1},\"scenarios_per_s\":{:.0}}}",
        total.safety_violations,
        total.liveness_failures,
        total.safety_failed,
        total.liveness_failed,
        total.integrity_failures,
        total.integrity_failed,
        total.commits,
        t.elapsed().as_secs_f64(),
        done as f64 / t.elapsed().as_secs_f64()
    );
    std::process::exit(if total.safety_violations + total.integrity_failures > 0 { 1 } else { 0 });
}
