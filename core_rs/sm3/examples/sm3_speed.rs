//! One-core SM3 throughput, one JSON object per line.
//!
//! `cargo run --release -p tfnode-sm3 --example sm3_speed`
//!
//! The machine is shared with other jobs, so each figure is the best of many
//! short windows, the cases of a group are interleaved window by window (each
//! sees the same background load), and time is this thread's CPU time (as
//! `openssl speed` divides by CPU time unless given `-elapsed`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tfnode_sm3::{hash, Backend};

/// Time this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`),
/// falling back to wall-clock time elsewhere.
fn cpu_time(origin: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| origin.elapsed())
}

/// A case: name, unit, units of work per call, scale for printing, the call.
type Case<'a> = (String, &'static str, f64, f64, Box<dyn FnMut() + 'a>);

/// Run the cases interleaved, 40 windows of 25 ms each (~1 s per case);
/// print units per CPU-second of each case's best window.
fn run(mut cases: Vec<Case<'_>>) {
    let origin = Instant::now();
    for c in cases.iter_mut() {
        (c.4)();
    }
    let mut best = vec![0f64; cases.len()];
    for _ in 0..40 {
        for (c, b) in cases.iter_mut().zip(best.iter_mut()) {
            let (wall, cpu0) = (Instant::now(), cpu_time(origin));
            let mut calls = 0u64;
            while wall.elapsed() < Duration::from_millis(25) {
                (c.4)();
                calls += 1;
            }
            let cpu = (cpu_time(origin) - cpu0).as_secs_f64().max(1e-9);
            *b = b.max(c.2 * calls as f64 / cpu);
        }
    }
    for (c, b) in cases.iter().zip(best) {
        println!("{{\"name\":\"{}\",\"unit\":\"{}\",\"value\":{:.1}}}", c.0, c.1, b / c.3);
    }
}

fn main() {
    // One stream: `hash` on 16 KiB (the target) and each compression variant.
    let big = vec![0xa5u8; 16384];
    let mut cases: Vec<Case<'_>> = vec![(
        "sm3_16k_stream".into(),
        "MB/s",
        16384.0,
        1e6,
        Box::new(|| {
            black_box(hash(black_box(&big)));
        }),
    )];
    // `hash` once more at the end: a check that the order of cases is not what differs.
    for (name, f) in tfnode_sm3::bench_internals::one_stream_variants() {
        let mut st = [0u32; 8];
        let big = &big;
        cases.push((format!("sm3_16k_compress_{name}"), "MB/s", 16384.0, 1e6, Box::new(move || f(black_box(&mut st), big))));
    }
    cases.push((
        "sm3_16k_stream_again".into(),
        "MB/s",
        16384.0,
        1e6,
        Box::new(|| {
            black_box(hash(black_box(&big)));
        }),
    ));
    run(cases);

    // Many 64-byte messages: the default (`hash_many`) and each backend.
    let nodes = vec![[7u8; 32]; 2 * 4096];
    let nodes = &nodes;
    let long = vec![0x5au8; 16 * 16384];
    let longs: Vec<&[u8]> = long.chunks(16384).collect();
    let longs = &longs;
    let data = vec![0x3cu8; 64 * 4096];
    let msgs: Vec<&[u8]> = data.chunks(64).collect();
    let n = msgs.len() as f64;
    let msgs = &msgs;
    let mut cases: Vec<Case<'_>> = vec![(
        "sm3_many_64B".into(),
        "msg/s",
        n,
        1.0,
        Box::new(move || {
            black_box(tfnode_sm3::hash_many(black_box(msgs)));
        }),
    )];
    for b in Backend::available() {
        let mut out = vec![[0u8; 32]; msgs.len()];
        let name = format!("sm3_many_64B_{}", format!("{b:?}").to_lowercase());
        cases.push((name, "msg/s", n, 1.0, Box::new(move || b.hash_many_into(black_box(msgs), &mut out))));
    }
    // One Merkle level: SM3(0x01 || left || right), 65-byte inputs.
    let mut out = vec![[0u8; 32]; 4096];
    cases.push(("sm3_merkle_nodes_65B".into(), "msg/s", 4096.0, 1.0, Box::new(move || tfnode_sm3::hash_pairs_prefixed_into(&[1], black_box(nodes), &mut out))));
    // 16 long messages: lane set-up amortised, the SIMD compression alone.
    for b in Backend::available() {
        let mut out = vec![[0u8; 32]; 16];
        let name = format!("sm3_16x16k_{b:?}").to_lowercase();
        cases.push((name, "MB/s", 16.0 * 16384.0, 1e6, Box::new(move || b.hash_many_into(black_box(longs), &mut out))));
    }
    run(cases);
}
