//! Many Twins scenarios outside the test harness, with progress on stderr:
//!   cargo run --release -p tfnode-consensus --features sim --example twins -- 1000000 0 2 [enumerate]
//! (scenarios, seed, threads; a fourth argument `enumerate` walks the scenario space in
//! order instead of sampling). Prints one JSON object; exit status 1 on a safety violation.
use std::time::Instant;

use tfnode_consensus::sim::twins::{run_twins, TwinsConfig};

fn main() {
    let a: Vec<u64> = std::env::args().skip(1).filter_map(|x| x.parse().ok()).collect();
    let (n, seed, threads) = (a.first().copied().unwrap_or(1_000_000), a.get(1).copied().unwrap_or(0), a.get(2).copied().unwrap_or(2));
    let t = Instant::now();
    // Chunks of 10k so a long run shows progress and a violation is reported early.
    let (mut done, mut viol, mut live, mut commits, mut first) = (0u64, 0u64, 0u64, 0u64, None);
    while done < n {
        let k = (n - done).min(10_000);
        let mut cfg = TwinsConfig::new(k, seed);
        cfg.threads = threads as usize;
        // Scenario indices continue across chunks: chunk c covers done..done+k.
        cfg.first = done;
        cfg.enumerate = std::env::args().any(|a| a == "enumerate");
        let s = run_twins(&cfg);
        viol += s.safety_violations;
        live += s.liveness_failures;
        commits += s.commits;
        first = first.or(s.first_violation);
        done += k;
        eprintln!("{done}/{n} scenarios, {viol} safety violations, {live} liveness failures, {:.0}/s", done as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"bench\":\"twins_many\",\"scenarios\":{done},\"seed\":{seed},\"safety_violations\":{viol},\"liveness_failures\":{live},\"commits\":{commits},\"first_violation\":{},\"wall_s\":{:.1},\"scenarios_per_s\":{:.0}}}",
        first.map_or("null".to_string(), |f: u64| f.to_string()),
        t.elapsed().as_secs_f64(),
        done as f64 / t.elapsed().as_secs_f64()
    );
    std::process::exit(if viol > 0 { 1 } else { 0 });
}
