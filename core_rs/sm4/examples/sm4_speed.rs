//! One-core SM4-GCM throughput per backend, one JSON object per line.
//!
//! `cargo run --release -p tfnode-sm4 --example sm4_speed [filter]` (only the cases whose
//! name contains `filter`, e.g. `vaes_16384`, for `perf stat`)
//!
//! Best of 12 interleaved 100 ms windows per case, divided by this thread's CPU time (the
//! machine is shared; see core_rs/sm3/examples/sm3_speed.rs for the method). The windows
//! are longer than SM3's because schedstat's CPU time advances at scheduler ticks: a
//! 25 ms window could read one tick short and report a rate far too high.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tfnode_sm4::{Backend, Sm4Gcm};

fn cpu_time(origin: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| origin.elapsed())
}

fn main() {
    let key = [0x42u8; 16];
    let nonce = [7u8; 12];
    let sizes = [16384usize, 1024];
    let filter = std::env::args().nth(1).unwrap_or_default();
    let mut cases: Vec<(String, usize, Sm4Gcm)> = Vec::new();
    // `auto` is what `Sm4Gcm::new` (and so the Python API) picks on this CPU.
    for b in std::iter::once(Backend::Auto).chain(Backend::available()) {
        for &n in &sizes {
            let name = format!("{b:?}").to_lowercase();
            let case = format!("sm4_gcm_{name}_{n}");
            if case.contains(&filter) {
                cases.push((case, n, Sm4Gcm::with_backend(&key, b)));
            }
        }
    }
    let pt = vec![0xa5u8; 16384];
    let mut out = vec![0u8; 16384 + 16];
    let origin = Instant::now();
    let mut best = vec![0f64; cases.len()];
    for _ in 0..12 {
        for ((_, n, g), b) in cases.iter().zip(best.iter_mut()) {
            let (wall, cpu0) = (Instant::now(), cpu_time(origin));
            let mut calls = 0u64;
            while wall.elapsed() < Duration::from_millis(100) {
                g.encrypt_into(&nonce, b"hdr!", black_box(&pt[..*n]), &mut out[..n + 16]).expect("encrypt");
                calls += 1;
            }
            let cpu = (cpu_time(origin) - cpu0).as_secs_f64().max(1e-9);
            *b = b.max((*n as f64) * calls as f64 / cpu);
        }
    }
    for ((name, n, _), b) in cases.iter().zip(best) {
        println!("{{\"name\":\"{name}_MBps\",\"unit\":\"MB/s\",\"value\":{:.1}}}", b / 1e6);
        println!("{{\"name\":\"{name}_us_per_call\",\"unit\":\"us\",\"value\":{:.3}}}", *n as f64 / b * 1e6);
    }
}
