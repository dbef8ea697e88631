//! One-core SM3 throughput, one JSON object per line.
//!
//! `cargo run --release -p tfnode-sm3 --example speed`

use std::hint::black_box;
use std::time::{Duration, Instant};

use tfnode_sm3::{hash, Backend};

/// Time this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`),
/// falling back to wall-clock time elsewhere. Like `openssl speed` (which
/// divides by CPU time unless given `-elapsed`), this keeps the figures
/// meaningful on a shared machine where the thread is often preempted.
fn cpu_time(start: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| start.elapsed())
}

/// Run `f` (which processes `per_call` units) for about a second in ten
/// windows; units per CPU-second of the best window.
fn rate(per_call: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let origin = Instant::now();
    let window = Duration::from_millis(100);
    let mut best = 0f64;
    for _ in 0..10 {
        let mut calls = 0u64;
        let (wall, cpu0) = (Instant::now(), cpu_time(origin));
        while wall.elapsed() < window {
            f();
            calls += 1;
        }
        let cpu = (cpu_time(origin) - cpu0).as_secs_f64().max(1e-9);
        best = best.max(per_call * calls as f64 / cpu);
    }
    best
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
    // Long messages: the lane set-up is amortised, this is the SIMD compression alone.
    let long = vec![0x5au8; 16 * 16384];
    let longs: Vec<&[u8]> = long.chunks(16384).collect();
    let mut out16 = vec![[0u8; 32]; 16];
    for b in Backend::available() {
        let v = rate(long.len() as f64, || b.hash_many_into(black_box(&longs), &mut out16));
        line(&format!("sm3_16x16k_{b:?}").to_lowercase(), "MB/s", v / 1e6);
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
