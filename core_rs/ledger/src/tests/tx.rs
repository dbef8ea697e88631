use proptest::prelude::*;

use super::{assert_exact, test_key};
use crate::{
    decode_and_check_batch, decode_and_verify_batch, raw_signing_digests, tx_hashes, verify_raws, LedgerError, Transaction, MAX_ARGS_LEN, MAX_TX_LEN,
    MIN_TX_LEN,
};

pub(crate) fn signed(seed: u8, nonce: u64, args: &[u8]) -> Transaction {
    let mut tx = Transaction::new(b"tfnode-test", nonce, 100, 50_000, "asset", "transfer", args).unwrap();
    tx.sign(&test_key(seed)).unwrap();
    tx
}

#[test]
fn sign_verify_roundtrip() {
    let tx = signed(1, 7, b"\x01\x02");
    tx.verify().unwrap();
    let enc = tx.encode();
    assert_eq!(enc.len(), tx.encoded_len());
    let back = Transaction::decode(&enc).unwrap();
    assert_eq!(back, tx);
    assert_eq!(back.hash(), tfnode_sm3::hash(&enc));
    back.check_stateless(b"tfnode-test").unwrap();
    assert!(matches!(back.check_stateless(b"other"), Err(LedgerError::WrongChain { .. })));
    assert_exact(&enc, Transaction::decode);
}

#[test]
fn any_changed_field_breaks_the_signature() {
    let tx = signed(2, 1, b"abc");
    let mut muts: Vec<Transaction> = Vec::new();
    let mut t = tx.clone();
    t.nonce += 1;
    muts.push(t);
    let mut t = tx.clone();
    t.expiry += 1;
    muts.push(t);
    let mut t = tx.clone();
    t.gas_limit += 1;
    muts.push(t);
    let mut t = tx.clone();
    t.chain_id = b"tfnode-tesT".to_vec();
    muts.push(t);
    let mut t = tx.clone();
    t.contract = "assex".into();
    muts.push(t);
    let mut t = tx.clone();
    t.method = "transfex".into();
    muts.push(t);
    let mut t = tx.clone();
    t.args = b"abd".to_vec();
    muts.push(t);
    let mut t = tx.clone();
    t.sender = test_key(3).public_key().to_compressed();
    muts.push(t);
    let mut t = tx.clone();
    t.signature[10] ^= 1;
    muts.push(t);
    for m in muts {
        assert!(matches!(m.verify(), Err(LedgerError::BadSignature { .. })), "{m:?}");
        // The digest over the decoded bytes in place decides exactly as over a re-encoding.
        let raw = m.encode();
        let back = Transaction::decode(&raw).unwrap();
        assert!(matches!(back.verify_raw(&raw), Err(LedgerError::BadSignature { .. })), "{m:?}");
    }
    let raw = tx.encode();
    Transaction::decode(&raw).unwrap().verify_raw(&raw).unwrap();
}

#[test]
fn caps_and_stateless_errors() {
    assert!(matches!(Transaction::new(b"", 0, 0, 0, "a", "b", b""), Err(LedgerError::Empty { .. })));
    assert!(matches!(Transaction::new(&[1; 65], 0, 0, 0, "a", "b", b""), Err(LedgerError::TooLong { len: 65, cap: 64, .. })));
    assert!(Transaction::new(b"c", 0, 0, 0, &"x".repeat(65), "b", b"").is_err());
    assert!(Transaction::new(b"c", 0, 0, 0, "a", "", b"").is_err());
    assert!(Transaction::new(b"c", 0, 0, 0, "a", "b", &vec![0; MAX_ARGS_LEN + 1]).is_err());
    let mut big = Transaction::new(&[7; 64], 0, 0, 0, &"c".repeat(64), &"m".repeat(64), &vec![0; MAX_ARGS_LEN]).unwrap();
    big.sign(&test_key(1)).unwrap();
    assert_eq!(big.encode().len(), MAX_TX_LEN);
    assert_eq!((MIN_TX_LEN, MAX_TX_LEN), (141, 65_866), "docs/ledger.md states these sizes");
    assert_eq!(Transaction::decode(&big.encode()).unwrap(), big);
    let small = signed(1, 0, b"");
    assert_eq!(Transaction::new(b"c", 0, 0, 0, "a", "b", b"").unwrap().encoded_len(), MIN_TX_LEN);
    let mut e = small.encode();
    e[0] = 2;
    assert_eq!(Transaction::decode(&e), Err(LedgerError::BadVersion { what: "transaction", got: 2, expected: 1 }));
    let mut e = small.encode();
    e[1 + 4 + 11] = 0x04;
    assert_eq!(Transaction::decode(&e), Err(LedgerError::SenderPrefix(4)));
    // Expiry window.
    assert!(small.check_expiry(100, 10).is_ok());
    assert!(matches!(small.check_expiry(101, 10), Err(LedgerError::Expired { expiry: 100, height: 101 })));
    assert!(matches!(small.check_expiry(50, 10), Err(LedgerError::ExpiryTooFar { .. })));
    // Message carries numbers.
    let msg = LedgerError::TooLong { what: "args", len: 70000, cap: 65536 }.to_string();
    assert!(msg.contains("70000") && msg.contains("65536"), "{msg}");
}

#[test]
fn replay_key_ignores_the_signature() {
    let a = signed(4, 9, b"x");
    let b = signed(4, 9, b"x"); // hedged nonce: a new signature
    assert_ne!(a.signature, b.signature);
    assert_ne!(a.hash(), b.hash());
    assert_eq!(a.replay_key(), b.replay_key());
    assert_ne!(a.replay_key(), signed(4, 10, b"x").replay_key());
    assert_ne!(a.replay_key(), signed(5, 9, b"x").replay_key());
}

#[test]
fn batch_verification_reports_each_item() {
    let good: Vec<Vec<u8>> = (0..40).map(|i| signed((i % 5) as u8 + 1, i, b"p").encode()).collect();
    let mut raw = good.clone();
    let l = raw[3].len();
    raw[3][l - 1] ^= 1; // corrupt the signature
    raw[5] = vec![1, 2, 3];
    let mut other = signed(1, 1, b"").clone();
    other.chain_id = b"other-chain".to_vec();
    other.sign(&test_key(1)).unwrap();
    raw[7] = other.encode();
    let refs: Vec<&[u8]> = raw.iter().map(|r| r.as_slice()).collect();
    let res = decode_and_verify_batch(&refs, b"tfnode-test");
    for (i, r) in res.iter().enumerate() {
        match i {
            3 => assert!(matches!(r, Err(LedgerError::BadSignature { .. })), "{r:?}"),
            5 => assert!(matches!(r, Err(LedgerError::Truncated { .. })), "{r:?}"),
            7 => assert!(matches!(r, Err(LedgerError::WrongChain { .. })), "{r:?}"),
            _ => assert_eq!(r.as_ref().unwrap().encode(), good[i]),
        }
    }
}

/// Transactions of mixed sizes (a few bytes of args to ~47 KB, an `iot.submit`'s size), in
/// an order that mixes them, so the multi-buffer lanes group unlike lengths.
fn mixed_sizes(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| signed((i % 7) as u8 + 1, i, &vec![i as u8; [3usize, 70, 200, 1_000, 47_000, 47_013][(i * 5 % 6) as usize]]).encode()).collect()
}

#[test]
fn multi_buffer_hashes_and_digests_match_one_at_a_time() {
    // 5 and 31 take one multi-buffer call; 70 is split into sorted chunks over cores.
    for n in [1u64, 5, 31, 70] {
        let raw = mixed_sizes(n);
        let refs: Vec<&[u8]> = raw.iter().map(|r| r.as_slice()).collect();
        let one: Vec<[u8; 32]> = refs.iter().map(|r| tfnode_sm3::hash(r)).collect();
        assert_eq!(tx_hashes(&refs), one, "{n} hashes");
        let digests: Vec<[u8; 32]> = refs.iter().map(|r| Transaction::decode(r).unwrap().signing_digest()).collect();
        assert_eq!(raw_signing_digests(&refs), digests, "{n} digests");
    }
    assert!(tx_hashes(&[]).is_empty());
    // A raw shorter than a signature: a digest (of an empty body), no panic.
    assert_eq!(raw_signing_digests(&[b"short".as_slice()]).len(), 1);
}

#[test]
fn verify_raws_decides_as_verify_raw_and_skips_what_it_is_told() {
    let good = mixed_sizes(40);
    let mut raw = good.clone();
    for i in [2usize, 11, 39] {
        let l = raw[i].len();
        raw[i][l - 1] ^= 1; // a bad signature
    }
    raw[20][60] ^= 1; // a changed field: the signature no longer covers it
    let refs: Vec<&[u8]> = raw.iter().map(|r| r.as_slice()).collect();
    let txs: Vec<Transaction> = refs.iter().map(|r| Transaction::decode(r).unwrap()).collect();
    let slots: Vec<Option<&Transaction>> = txs.iter().enumerate().map(|(i, t)| (i != 11).then_some(t)).collect();
    let got = verify_raws(&slots, &refs);
    for (i, (t, v)) in txs.iter().zip(&got).enumerate() {
        if i == 11 {
            assert!(v.is_ok(), "a skipped slot is Ok");
        } else {
            assert_eq!(v.is_ok(), t.verify_raw(refs[i]).is_ok(), "transaction {i}");
        }
    }
    assert_eq!(got.iter().filter(|v| v.is_err()).count(), 3, "2, 20 and 39 refused");
}

#[test]
fn verify_raws_in_chunks_gives_verify_raws_errors_exactly() {
    // Enough transactions from few senders that their keys are cached and whole chunks
    // go through `verify_cached_many` (IFMA lanes where the CPU has them); each result,
    // error values included, must be what `verify_raw` says on its own.
    for n in [0u64, 1, 9, 70, 300] {
        let mut raw: Vec<Vec<u8>> = (0..n).map(|i| signed((i % 6) as u8 + 1, i, &[i as u8; 5]).encode()).collect();
        for i in (0..n as usize).filter(|i| i % 13 == 4 || i % 29 == 7) {
            let l = raw[i].len();
            raw[i][l - 1 - (i % 64)] ^= 1 << (i % 8); // a bit of r or s flipped
        }
        let refs: Vec<&[u8]> = raw.iter().map(|r| r.as_slice()).collect();
        let txs: Vec<Transaction> = refs.iter().map(|r| Transaction::decode(r).unwrap()).collect();
        let slots: Vec<Option<&Transaction>> = txs.iter().map(Some).collect();
        let got = verify_raws(&slots, &refs);
        let want: Vec<_> = txs.iter().zip(&refs).map(|(t, r)| t.verify_raw(r)).collect();
        assert_eq!(got, want, "{n} transactions");
        if n >= 70 {
            assert!(got.iter().any(|v| matches!(v, Err(LedgerError::BadSignature { .. }))));
        }
    }
}

#[test]
fn batch_check_without_signatures_still_decodes_and_checks_the_chain() {
    // For a batch a certificate vouches for: everything but the signature is still checked.
    let good: Vec<Vec<u8>> = (0..12).map(|i| signed((i % 3) as u8 + 1, i, b"p").encode()).collect();
    let mut raw = good.clone();
    let l = raw[3].len();
    raw[3][l - 1] ^= 1; // corrupt the signature: not looked at here
    raw[5] = vec![1, 2, 3];
    let mut other = signed(1, 1, b"").clone();
    other.chain_id = b"other-chain".to_vec();
    other.sign(&test_key(1)).unwrap();
    raw[7] = other.encode();
    let refs: Vec<&[u8]> = raw.iter().map(|r| r.as_slice()).collect();
    for (i, r) in decode_and_check_batch(&refs, b"tfnode-test").iter().enumerate() {
        match i {
            5 => assert!(matches!(r, Err(LedgerError::Truncated { .. })), "{r:?}"),
            7 => assert!(matches!(r, Err(LedgerError::WrongChain { .. })), "{r:?}"),
            _ => assert_eq!(r.as_ref().unwrap().encode(), raw[i]),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encode_decode_roundtrip(chain in proptest::collection::vec(any::<u8>(), 1..64),
                               nonce: u64, expiry: u64, gas: u64,
                               contract in "[a-z_]{1,64}", method in "[a-zA-Z0-9_]{1,64}",
                               args in proptest::collection::vec(any::<u8>(), 0..300),
                               sig in proptest::collection::vec(any::<u8>(), 64)) {
        let mut tx = Transaction::new(&chain, nonce, expiry, gas, &contract, &method, &args).unwrap();
        tx.sender = test_key(1).public_key().to_compressed();
        tx.signature.copy_from_slice(&sig);
        let enc = tx.encode();
        prop_assert_eq!(Transaction::decode(&enc).unwrap(), tx);
        // Every prefix is rejected; every extension too.
        for n in [0, 1, enc.len() / 2, enc.len() - 1] {
            prop_assert!(Transaction::decode(&enc[..n]).is_err());
        }
        let mut e = enc.clone();
        e.push(0);
        prop_assert!(Transaction::decode(&e).is_err());
    }

    #[test]
    fn decode_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(tx) = Transaction::decode(&bytes) {
            prop_assert_eq!(tx.encode(), bytes);
        }
    }

    #[test]
    fn mutated_encodings_decode_canonically_or_fail(i in any::<prop::sample::Index>(), x in 1u8..=255) {
        let mut e = signed(1, 3, b"hello").encode();
        let i = i.index(e.len());
        e[i] ^= x;
        if let Ok(tx) = Transaction::decode(&e) {
            prop_assert_eq!(tx.encode(), e);
            prop_assert!(tx.verify().is_err());
        }
    }
}

/// Expiry and height are u64s from clients and storage: the window check never wraps.
#[test]
fn expiry_window_at_the_ends_of_u64() {
    let tx = |expiry| Transaction::new(b"c", 1, expiry, 1, "a", "m", b"").unwrap();
    assert!(tx(u64::MAX).check_expiry(0, u64::MAX).is_ok());
    assert!(tx(u64::MAX).check_expiry(u64::MAX, 0).is_ok());
    assert!(matches!(tx(u64::MAX).check_expiry(0, u64::MAX - 1), Err(LedgerError::ExpiryTooFar { .. })));
    assert!(matches!(tx(0).check_expiry(u64::MAX, u64::MAX), Err(LedgerError::Expired { expiry: 0, height: u64::MAX })));
}
