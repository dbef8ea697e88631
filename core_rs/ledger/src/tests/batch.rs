use proptest::prelude::*;

use super::assert_exact;
use super::tx::signed;
use crate::receipts::{receipt_hash, receipt_proof, receipts_root, verify_receipt};
use crate::{batch_digest, verify_tx_in_batch, Batch, LedgerError, MAX_BATCH_TXS};

fn batch(n: usize) -> Batch {
    Batch::new((0..n).map(|i| signed(1, i as u64, b"b").encode()).collect()).unwrap()
}

#[test]
fn roundtrip_digest_and_proofs() {
    for n in [1, 2, 3, 7, 64, 65] {
        let b = batch(n);
        let enc = b.encode();
        assert_eq!(enc.len(), b.encoded_len());
        assert_eq!(Batch::decode(&enc).unwrap(), b);
        if n <= 3 {
            assert_exact(&enc, Batch::decode);
        }
        let hashes = b.tx_hashes();
        let root = b.root();
        assert_eq!(b.digest(), batch_digest(&root, n));
        assert_ne!(b.digest(), batch_digest(&root, n + 1));
        for i in 0..n {
            let p = b.proof(i).unwrap();
            assert!(verify_tx_in_batch(&root, n, &hashes[i], i, &p));
            assert!(!verify_tx_in_batch(&root, n, &hashes[(i + 1) % n], i, &p) || n == 1);
        }
        assert!(b.proof(n).is_err());
    }
}

#[test]
fn batch_caps() {
    assert!(matches!(Batch::new(vec![]), Err(LedgerError::Empty { .. })));
    assert!(Batch::new(vec![vec![1; 10]]).is_err());
    assert!(matches!(Batch::decode(&[1, 0, 0, 0, 0]), Err(LedgerError::Empty { .. })));
    // A count far beyond the cap costs nothing.
    assert!(matches!(Batch::decode(&[1, 0xff, 0xff, 0xff, 0xff]), Err(LedgerError::TooLong { cap: MAX_BATCH_TXS, .. })));
    // A count within the cap but beyond the bytes left is refused before allocating.
    assert!(matches!(Batch::decode(&[1, 0, 0, 0x10, 0]), Err(LedgerError::Truncated { .. })));
}

#[test]
fn receipts_helpers() {
    let hs: Vec<_> = (0..10u8).map(|i| receipt_hash(&[i; 5])).collect();
    let root = receipts_root(&hs);
    for i in 0..10 {
        let p = receipt_proof(&hs, i).unwrap();
        assert!(verify_receipt(&root, &hs[i], i as u64, 10, &p));
        assert!(!verify_receipt(&root, &hs[i], (i as u64 + 1) % 10, 10, &p));
        assert!(!verify_receipt(&root, &hs[(i + 1) % 10], i as u64, 10, &p));
    }
    assert!(matches!(receipt_proof(&hs, 10), Err(LedgerError::IndexOutOfRange { index: 10, size: 10 })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn decode_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(b) = Batch::decode(&bytes) {
            prop_assert_eq!(b.encode(), bytes);
        }
    }
}
