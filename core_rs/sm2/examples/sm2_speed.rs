//! Throughput of the SM2 operations, one JSON object per line:
//! `cargo run --release -p tfnode-sm2 --example sm2_speed [seconds-per-item] [name-filter]`.
//! `value` is operations per wall-clock second; `per_cpu_second` divides by the thread's
//! CPU time instead (equal on an idle machine; the honest figure on a shared one).

use std::time::{Duration, Instant};

use tfnode_sm2::{set_key_cache_capacity, verify_batch, verify_cached, verify_cached_many, PublicKey, SecretKey, DEFAULT_UID};

/// CPU time of the calling thread (Linux); 0 elsewhere. On a shared machine the wall
/// clock also counts time other processes took, so single-thread figures report both.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Prints the line and returns the per-CPU-second rate (`None` when filtered out).
fn rate(name: &str, budget: Duration, ops_per_call: usize, mut f: impl FnMut()) -> Option<f64> {
    let filter = std::env::args().nth(2).unwrap_or_default();
    if !name.contains(&filter) {
        return None;
    }
    f(); // warm-up (lazy tables, caches)
         // SM2_SPEED_CALLS=N: exactly N calls instead of a time budget, so that an outside
         // counter (`perf stat -e cycles:u`, run with N and 2N) gives cycles per operation,
         // which a shared machine disturbs far less than the clocks do.
    let fixed: Option<usize> = std::env::var("SM2_SPEED_CALLS").ok().and_then(|v| v.parse().ok());
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let mut calls = 0usize;
    while fixed.map_or(start.elapsed() < budget, |n| calls < n) {
        f();
        calls += 1;
    }
    let ops = (calls * ops_per_call) as f64;
    let wall = start.elapsed().as_secs_f64();
    let cpu = (thread_cpu() - cpu0).as_secs_f64();
    let per_cpu = if cpu > 0.0 && !name.contains("threads") { ops / cpu } else { ops / wall };
    println!("{{\"name\":\"{name}\",\"unit\":\"op/s\",\"value\":{:.0},\"per_cpu_second\":{per_cpu:.0}}}", ops / wall);
    Some(per_cpu)
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let sk = SecretKey::random();
    let pk = sk.public_key();
    let msg = b"transfer 100 CNY from alice to bob, nonce 42";
    let e = pk.digest(msg, DEFAULT_UID);

    // Building blocks: where the time of a verification goes (ns per operation).
    rate("sm2_field_mul", budget, 1000, || {
        std::hint::black_box(tfnode_sm2::bench_internals::field_mul_chain(1000));
    });
    rate("sm2_field_mul_2chains", budget, 1000, || {
        std::hint::black_box(tfnode_sm2::bench_internals::field_mul_chain2(1000));
    });
    rate("sm2_field_mul_4chains", budget, 1000, || {
        std::hint::black_box(tfnode_sm2::bench_internals::field_mul_chain4(1000));
    });
    rate("sm2_field_sqr", budget, 1000, || {
        std::hint::black_box(tfnode_sm2::bench_internals::field_sqr_chain(1000));
    });
    rate("sm2_point_double", budget, 1000, || {
        std::hint::black_box(tfnode_sm2::bench_internals::point_double_chain(1000));
    });
    rate("sm2_point_madd", budget, 1000, || {
        std::hint::black_box(tfnode_sm2::bench_internals::point_madd_chain(1000));
    });
    rate("sm2_key_table_build", budget, 1, || {
        std::hint::black_box(tfnode_sm2::bench_internals::key_table_build());
    });
    rate("sm2_keygen", budget, 1, || {
        std::hint::black_box(SecretKey::random());
    });
    rate("sm2_sign_digest", budget, 1, || {
        std::hint::black_box(sk.sign_digest(&e));
    });
    rate("sm2_sign", budget, 1, || {
        std::hint::black_box(sk.sign(msg, DEFAULT_UID));
    });

    // Many distinct keys so the verification is not helped by any cache.
    let keys: Vec<SecretKey> = (0..64).map(|_| SecretKey::random()).collect();
    let sigs: Vec<(PublicKey, Vec<u8>, [u8; 64])> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let m = format!("message {i}").into_bytes();
            let s = k.sign(&m, DEFAULT_UID).to_bytes();
            (k.public_key(), m, s)
        })
        .collect();
    let parsed: Vec<_> = sigs.iter().map(|(p, m, s)| (p.clone(), m.clone(), tfnode_sm2::Signature::from_bytes(s).unwrap())).collect();
    let mut i = 0;
    rate("sm2_verify", budget, 1, || {
        let (p, m, s) = &parsed[i % parsed.len()];
        assert!(p.verify(m, DEFAULT_UID, s));
        i += 1;
    });
    rate("sm2_verify_digest", budget, 1, || {
        let (p, _, s) = &parsed[0];
        std::hint::black_box(p.verify_digest(&e, s));
    });
    let pk65: Vec<[u8; 65]> = sigs.iter().map(|(p, _, _)| p.to_uncompressed()).collect();
    set_key_cache_capacity(4096);
    let mut i = 0;
    rate("sm2_verify_cached", budget, 1, || {
        let j = i % sigs.len();
        assert!(verify_cached(&pk65[j], &sigs[j].1, DEFAULT_UID, &sigs[j].2));
        i += 1;
    });

    // Batches of 1024 items over the 64 keys (cached after first sight).
    let items: Vec<(&[u8], &[u8], &[u8])> = (0..1024)
        .map(|i| {
            let j = i % sigs.len();
            (pk65[j].as_slice(), sigs[j].1.as_slice(), sigs[j].2.as_slice())
        })
        .collect();
    // verify_cached_many (IFMA lanes where the CPU has them) against the scalar
    // verify_cached loop over the same items, one thread, in the same run; 64-item calls
    // as the ledger makes them.
    let scalar = rate("sm2_verify_cached_loop_64keys", budget, items.len(), || {
        assert!(items.iter().all(|(p, m, s)| verify_cached(p, m, DEFAULT_UID, s)));
    });
    let many = rate("sm2_verify_cached_many_64keys", budget, items.len(), || {
        assert!(items.chunks(64).all(|c| verify_cached_many(c).iter().all(|&b| b)));
    });
    // Short calls: a remainder of 3 to 7 cached items is padded to a group of eight.
    for k in [2usize, 3, 5] {
        rate(&format!("sm2_verify_cached_many_calls_of_{k}"), budget, items.len() / k * k, || {
            assert!(items.chunks_exact(k).all(|c| verify_cached_many(c).iter().all(|&b| b)));
        });
    }
    if let (Some(a), Some(b)) = (scalar, many) {
        println!("{{\"name\":\"sm2_verify_cached_many_ratio\",\"unit\":\"x\",\"value\":{:.2},\"lanes\":{}}}", b / a, tfnode_sm2::lanes_available());
    }
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    one.install(|| {
        rate("sm2_verify_batch_1thread", budget, items.len(), || {
            assert!(verify_batch(&items).iter().all(|&b| b));
        })
    });
    rate(&format!("sm2_verify_batch_{}threads", rayon::current_num_threads()), budget, items.len(), || {
        assert!(verify_batch(&items).iter().all(|&b| b));
    });

    let ct = pk.encrypt(msg).unwrap();
    rate("sm2_encrypt", budget, 1, || {
        std::hint::black_box(pk.encrypt(msg).unwrap());
    });
    rate("sm2_decrypt", budget, 1, || {
        std::hint::black_box(sk.decrypt(&ct).unwrap());
    });
}
