//! Arbitrary bytes -> Batch::decode must never panic; whatever decodes re-encodes to the
//! same bytes, and its digest and every inclusion proof check out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfnode_ledger::{verify_tx_in_batch, Batch};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Batch::decode(data) {
        assert_eq!(b.encode(), data, "non-canonical batch encoding accepted");
        let root = b.root();
        let hashes = b.tx_hashes();
        let _ = b.digest();
        let i = data.len() % b.txs.len();
        let p = b.proof(i).expect("index in range");
        assert!(verify_tx_in_batch(&root, b.txs.len(), &hashes[i], i, &p));
    }
});
