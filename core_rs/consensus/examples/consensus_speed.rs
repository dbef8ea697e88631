//! Consensus benchmarks, one JSON object per line:
//!   cargo run --release -p tfnode-consensus --features sim,sm2 --example consensus_speed [blocks] [twins]
//! 1. A simulated 4-validator network with real SM2: committed blocks per second of wall
//!    time (one thread runs all four nodes) and CPU microseconds inside the core per block
//!    per node (signing, verifying QCs, votes and timeouts, bookkeeping).
//! 2. The same with the insecure test signatures: what the bookkeeping alone costs.
//! 3. Twins scenarios per second (n = 4, one twin, 7 scripted rounds).
use std::sync::Arc;
use std::time::Instant;

use tfnode_consensus::sim::twins::{run_twins, TwinsConfig};
use tfnode_consensus::sim::{simulate, SimConfig, Sm2Crypto, TestCrypto};

fn network(name: &str, crypto: Arc<dyn tfnode_consensus::sim::SimCrypto>, blocks: u64) {
    let mut c = SimConfig::new(4, 1);
    c.crypto = crypto;
    c.target_height = blocks;
    c.max_time_ms = u64::MAX / 4;
    let t = Instant::now();
    let r = simulate(c);
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(r.safety_violations, 0);
    let per_node_block_us = r.core_cpu_ns as f64 / 1e3 / (r.min_height as f64 * 4.0);
    println!(
        "{{\"bench\":\"network_4\",\"crypto\":\"{name}\",\"blocks\":{},\"wall_s\":{wall:.3},\"blocks_per_s\":{:.0},\"cpu_us_per_block_per_node\":{per_node_block_us:.1},\"messages\":{},\"latency_rounds\":{:.2}}}",
        r.min_height,
        r.min_height as f64 / wall,
        r.messages,
        r.latency_rounds
    );
}

/// Context for the per-block figure: what one SM2 sign and one cached verify cost here.
fn sm2_unit_costs() {
    use tfnode_consensus::sim::SimCrypto;
    let c = Sm2Crypto;
    let (signer, verifier) = (c.signer(0), c.verifier());
    let pk = signer.public_key();
    let d = [7u8; 32];
    let sig = signer.sign(&d);
    verifier.verify(&pk, &d, &sig); // admit the key to the cache
    let n = 2_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(signer.sign(&d));
    }
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        assert!(verifier.verify(&pk, &d, &sig));
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{{\"bench\":\"sm2_unit\",\"sign_us\":{sign_us:.1},\"verify_cached_us\":{verify_us:.1}}}");
}

fn main() {
    sm2_unit_costs();
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let blocks = args.first().copied().unwrap_or(2_000);
    let twins = args.get(1).copied().unwrap_or(2_000);
    network("sm2", Arc::new(Sm2Crypto), blocks);
    network("insecure-test", Arc::new(TestCrypto), blocks);
    for threads in [1, 2] {
        let mut cfg = TwinsConfig::new(twins, 7);
        cfg.threads = threads;
        let t = Instant::now();
        let s = run_twins(&cfg);
        let wall = t.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"twins\",\"threads\":{threads},\"scenarios\":{},\"scenarios_per_s\":{:.0},\"safety_violations\":{},\"liveness_failures\":{}}}",
            s.scenarios,
            s.scenarios as f64 / wall,
            s.safety_violations,
            s.liveness_failures
        );
    }
}
