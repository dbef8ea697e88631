//! One-core SM3 throughput, one JSON object per line.
//!
//! `cargo run --release -p tfnode-sm3 --example speed`

use std::hint::black_box;
use std::time::{Duration, Instant};

use tfnode_sm3::{hash, Backend};

/// Run `f` (which processes `per_call` units) for about a second; units per second.
fn rate(per_call: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut calls = 0u64;
    let start = Instant::now();
    let budget = Duration::from_secs(1);
    while start.elapsed() < budget {
        f();
        calls += 1;
    }
    per_call * calls as f64 / start.elapsed().as_secs_f64()
}

fn line(name: &str, unit: &str, value: f64) {
    println!("{{\"name\":\"{name}\",\"unit\":\"{unit}\",\"value\":{value:.1}}}");
}

fn main() {
    let big = vec![0xa5u8; 16384];
    let v = rate(16384.0, || {
        black_box(hash(black_box(&big)));
    });
    line("sm3_16k_stream", "MB/s", v / 1e6);

    let data = vec![0x3cu8; 64 * 4096];
    let msgs: Vec<&[u8]> = data.chunks(64).collect();
    let mut out = vec![[0u8; 32]; msgs.len()];
    for b in Backend::available() {
        let v = rate(msgs.len() as f64, || b.hash_many_into(black_box(&msgs), &mut out));
        let name = match b {
            Backend::Portable => "sm3_many_64B_portable",
            Backend::Avx2 => "sm3_many_64B_avx2",
            Backend::Avx512 => "sm3_many_64B_avx512",
        };
        line(name, "msg/s", v);
    }
    let v = rate(msgs.len() as f64, || {
        black_box(tfnode_sm3::hash_many(black_box(&msgs)));
    });
    line("sm3_many_64B", "msg/s", v);

    // One Merkle level: SM3(0x01 || left || right), 65-byte inputs.
    let nodes = vec![[7u8; 32]; 2 * 4096];
    let mut out = vec![[0u8; 32]; 4096];
    let v = rate(4096.0, || tfnode_sm3::hash_pairs_prefixed_into(&[1], black_box(&nodes), &mut out));
    line("sm3_merkle_nodes_65B", "msg/s", v);
}
