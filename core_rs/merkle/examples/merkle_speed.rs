//! Merkle root of 2^20 32-byte leaves on one and on two cores, JSON lines.
//!
//! `cargo run --release -p tfnode-merkle --example merkle_speed`
//! (not `speed`: examples share one output directory in the workspace and
//! tfnode-sm3 already has a `speed`; cargo warns on the collision and plans
//! to make it an error.)

use std::hint::black_box;
use std::time::Instant;

fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Seconds the calling thread has spent on a CPU (Linux), if known.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<u64>().ok()? as f64 / 1e9)
}

/// Best-of-`runs` CPU time of `f` on the calling thread. The machine is shared
/// with other jobs; wall time on one core includes time the thread waited.
fn best_cpu_of(runs: usize, mut f: impl FnMut()) -> Option<f64> {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t0 = thread_cpu_secs()?;
        f();
        best = best.min(thread_cpu_secs()? - t0);
    }
    Some(best)
}

fn main() {
    let n = 1usize << 20;
    let data: Vec<[u8; 32]> = (0..n as u32).map(|i| tfnode_sm3::hash(&i.to_le_bytes())).collect();
    let leaves: Vec<&[u8]> = data.iter().map(|x| x.as_slice()).collect();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool");
        let secs = pool.install(|| {
            best_of(5, || {
                black_box(tfnode_merkle::root(black_box(&leaves)));
            })
        });
        let name = if threads == 1 { "1core" } else { "2cores" };
        println!("{{\"name\":\"merkle_root_2^20_{name}\",\"unit\":\"s\",\"value\":{secs:.4}}}");
        if threads == 1 {
            // A one-thread pool runs everything on its worker, so measure there.
            let cpu = pool.install(|| {
                best_cpu_of(5, || {
                    black_box(tfnode_merkle::root(black_box(&leaves)));
                })
            });
            if let Some(cpu) = cpu {
                println!("{{\"name\":\"merkle_root_2^20_1core_cpu_time\",\"unit\":\"s\",\"value\":{cpu:.4}}}");
            }
        }
    }
    let hashes = tfnode_merkle::leaf_hashes(&leaves);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
    let secs = pool.install(|| {
        best_of(5, || {
            black_box(tfnode_merkle::proof_from_leaf_hashes(black_box(&hashes), 777_777).ok());
        })
    });
    println!("{{\"name\":\"merkle_proof_2^20_from_leaf_hashes_1core\",\"unit\":\"s\",\"value\":{secs:.4}}}");
    let root = tfnode_merkle::root_from_leaf_hashes(&hashes);
    let p = tfnode_merkle::proof_from_leaf_hashes(&hashes, 777_777).expect("index in range");
    let t = Instant::now();
    let k = 100_000;
    for _ in 0..k {
        black_box(tfnode_merkle::verify_proof(&root, black_box(leaves[777_777]), 777_777, n as u64, &p));
    }
    let rate = k as f64 / t.elapsed().as_secs_f64();
    println!("{{\"name\":\"merkle_verify_2^20\",\"unit\":\"proofs/s\",\"value\":{rate:.0}}}");
}
