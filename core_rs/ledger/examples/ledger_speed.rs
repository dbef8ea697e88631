//! Ledger speed, one JSON line per measurement.
//!
//! cargo run --release -p tfnode-ledger --example ledger_speed -- [keys] [block] [blocks]
//! defaults: a 1,000,000-key tree, blocks of 10,000 updates (half new keys, half
//! overwrites), 5 blocks; then proofs, verification and transaction checks.
use std::time::Instant;

use tfnode_ledger::smt::{verify, StateTree};
use tfnode_ledger::{decode_and_verify_batch, Batch, Transaction};

fn key(i: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(b"acct");
    k[4..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Process CPU time (user + system, all threads) in ms, from /proc (10 ms ticks): the
/// machine is shared, so wall time alone overstates the cost when others are busy.
fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) * 10.0 // utime, stime: fields 14 and 15 of stat
}

/// One SM3 of a 65-byte node at the documented single-stream speed (>= 380 MB/s, 2 blocks).
const REFERENCE_SM3_NS: f64 = 340.0;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let n = *args.first().unwrap_or(&1_000_000);
    let block = *args.get(1).unwrap_or(&10_000);
    let blocks = *args.get(2).unwrap_or(&5);
    let threads = rayon::current_num_threads();

    // Calibration: this machine is shared, so report what one SM3 of a tree node costs now.
    let tc = Instant::now();
    let mut acc = [0u8; 65];
    for i in 0..200_000u32 {
        acc[1..5].copy_from_slice(&i.to_be_bytes());
        let h = tfnode_sm3::hash(&acc);
        acc[33] ^= h[0];
    }
    let ns = tc.elapsed().as_secs_f64() * 1e9 / 200_000.0;
    println!(r#"{{"bench":"calibration","sm3_65_bytes_ns":{ns:.0},"check":{}}}"#, acc[33]);

    let mut t = StateTree::new();
    let t0 = Instant::now();
    let keys: Vec<[u8; 12]> = (0..n).map(key).collect();
    let vals: Vec<[u8; 16]> = (0..n).map(|i| [(i % 251) as u8; 16]).collect();
    let chunk = 100_000usize;
    for (v, (ks, vs)) in keys.chunks(chunk).zip(vals.chunks(chunk)).enumerate() {
        let ups: Vec<(&[u8], Option<&[u8]>)> = ks.iter().zip(vs).map(|(k, v)| (&k[..], Some(&v[..]))).collect();
        t.apply_in_place(v as u64 + 1, &ups).unwrap();
    }
    let build = t0.elapsed().as_secs_f64();
    // A node prunes old versions as it goes; keep only the latest after the bulk load.
    t.prune(t.version().unwrap());
    println!(r#"{{"bench":"smt_build","keys":{n},"seconds":{build:.3},"nodes":{},"threads":{threads}}}"#, t.store.len());

    let mut version = t.version().unwrap();
    let mut next = n;
    for b in 0..blocks {
        let mut ks: Vec<[u8; 12]> = Vec::with_capacity(block as usize);
        for j in 0..block {
            if j % 2 == 0 {
                ks.push(key(next));
                next += 1;
            } else {
                ks.push(key((j * 7919 + b * 104_729) % n));
            }
        }
        let val = [b as u8 ^ 0x5a; 16];
        let ups: Vec<(&[u8], Option<&[u8]>)> = ks.iter().map(|k| (&k[..], Some(&val[..]))).collect();
        version += 1;
        let c1 = cpu_ms();
        let t1 = Instant::now();
        let u = tfnode_ledger::smt::apply(&t.store, Some(version - 1), version, &ups).unwrap();
        let apply_ms = t1.elapsed().as_secs_f64() * 1e3;
        let apply_cpu_ms = cpu_ms() - c1;
        let (new, stale) = (u.new_nodes.len(), u.stale_nodes.len());
        let t2 = Instant::now();
        let bytes: usize = u.new_nodes.iter().map(|(k, nd)| k.encode().len() + nd.encode().len()).sum();
        let encode_ms = t2.elapsed().as_secs_f64() * 1e3;
        let t3 = Instant::now();
        t.store.commit(u);
        t.set_version(version).unwrap();
        t.prune(version.saturating_sub(8)); // keep 8 versions readable
        let commit_ms = t3.elapsed().as_secs_f64() * 1e3;
        println!(
            r#"{{"bench":"smt_block","tree_keys":{},"updates":{block},"apply_ms":{apply_ms:.2},"apply_cpu_ms":{apply_cpu_ms:.0},"apply_ms_at_reference_sm3":{:.1},"updates_per_s":{:.0},"encode_ms":{encode_ms:.2},"memstore_commit_ms":{commit_ms:.2},"new_nodes":{new},"stale_nodes":{stale},"new_bytes":{bytes},"threads":{threads}}}"#,
            next,
            apply_ms * REFERENCE_SM3_NS / ns,
            block as f64 / (apply_ms / 1e3)
        );
    }

    // Proofs: generate and verify for present and absent keys.
    let m = 20_000u64;
    let root = t.root_hash();
    let t4 = Instant::now();
    let proofs: Vec<_> = (0..m).map(|i| t.get_with_proof(&key(i * 37 % (next + 1000)), None).unwrap()).collect();
    let gen = t4.elapsed().as_secs_f64();
    let avg_sibs = proofs.iter().map(|(_, p)| p.siblings.len()).sum::<usize>() as f64 / m as f64;
    let t5 = Instant::now();
    let mut ok = 0;
    for (i, (v, p)) in proofs.iter().enumerate() {
        ok += verify(&root, &key(i as u64 * 37 % (next + 1000)), v.as_deref(), p) as usize;
    }
    let ver = t5.elapsed().as_secs_f64();
    assert_eq!(ok as u64, m);
    println!(
        r#"{{"bench":"smt_proofs","tree_keys":{next},"proofs":{m},"proofs_per_s":{:.0},"verifies_per_s":{:.0},"avg_siblings":{avg_sibs:.1},"avg_proof_bytes":{:.0},"threads":1}}"#,
        m as f64 / gen,
        m as f64 / ver,
        proofs.iter().map(|(_, p)| p.encode().len()).sum::<usize>() as f64 / m as f64
    );

    // Transactions: decode + verify a batch (100 senders, warm key cache) and a batch digest.
    let sks: Vec<_> = (0..100).map(|_| tfnode_sm2::SecretKey::random()).collect();
    let txs: Vec<Vec<u8>> = (0..4000u64)
        .map(|i| {
            let mut tx = Transaction::new(b"tfnode-bench", i, 1000, 100_000, "asset", "transfer", &[7u8; 48]).unwrap();
            tx.sign(&sks[(i % 100) as usize]).unwrap();
            tx.encode()
        })
        .collect();
    let refs: Vec<&[u8]> = txs.iter().map(|t| t.as_slice()).collect();
    decode_and_verify_batch(&refs[..200], b"tfnode-bench"); // warm the key cache
    let t6 = Instant::now();
    let res = decode_and_verify_batch(&refs, b"tfnode-bench");
    let dv = t6.elapsed().as_secs_f64();
    assert!(res.iter().all(|r| r.is_ok()));
    let b = Batch::new(txs.clone()).unwrap();
    let t7 = Instant::now();
    let d = b.digest();
    let dig = t7.elapsed().as_secs_f64();
    println!(
        r#"{{"bench":"tx_decode_verify","txs":{},"tx_bytes":{},"tx_per_s":{:.0},"batch_digest_ms":{:.2},"digest":"{}","threads":{threads}}}"#,
        txs.len(),
        txs[0].len(),
        txs.len() as f64 / dv,
        dig * 1e3,
        d.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
}
