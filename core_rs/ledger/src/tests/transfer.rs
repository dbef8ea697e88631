//! The native transfer's own rules; the byte-for-byte agreement with the Python reference is
//! tests/test_native_transfer.py (both paths over the same blocks).
use std::collections::HashMap;

use crate::transfer::*;

const TO: &[u8; 42] = b"0x00112233445566778899aabbccddeeff00112233";

fn positional(to: &[u8], amount: &[u8]) -> Vec<u8> {
    [b"\x01L\x02L\x02S\x2a".as_slice(), to, amount, b"D\x00"].concat()
}

#[test]
fn both_canonical_shapes_parse() {
    let want = TransferCall { to: parse_address(TO).unwrap(), amount: 300 };
    let mut tx = crate::Transaction::new(b"c", 1, 9, TRANSFER_GAS, ASSET, TRANSFER, &positional(TO, b"I\x02\x01\x2c")).unwrap();
    assert_eq!(parse_transfer(&tx), Some(want));
    tx.args = [b"\x01L\x02L\x00D\x02S\x02toS\x2a".as_slice(), TO, b"S\x06amountI\x02\x01\x2c"].concat();
    assert_eq!(parse_transfer(&tx), Some(want));
    tx.gas_limit = TRANSFER_GAS - 1;
    assert_eq!(parse_transfer(&tx), None, "under the price: the reference answers out_of_gas");
}

#[test]
fn anything_unusual_goes_to_the_reference() {
    let ok = |args: Vec<u8>| parse_args_of(&args).is_some();
    assert!(ok(positional(TO, b"I\x01\x7f")));
    assert!(!ok(positional(TO, b"I\x00")), "zero");
    assert!(!ok(positional(TO, b"I\x01\x00")), "zero, non-canonical");
    assert!(!ok(positional(TO, b"I\x01\xff")), "negative");
    assert!(!ok(positional(TO, b"I\x02\x00\x7f")), "not minimal");
    assert!(ok(positional(TO, b"I\x02\x00\x80")));
    assert!(!ok(positional(TO, &[b"I\x11".as_slice(), &[1u8; 17]].concat())), "over 127 bits");
    assert!(!ok(positional(TO, b"T")), "a bool is not an int");
    assert!(!ok(positional(&TO.to_ascii_uppercase(), b"I\x01\x01")), "uppercase hex");
    let mut long = positional(TO, b"I\x01\x01");
    long.push(0);
    assert!(!ok(long), "trailing byte");
}

fn parse_args_of(args: &[u8]) -> Option<TransferCall> {
    let tx = crate::Transaction::new(b"c", 1, 9, TRANSFER_GAS, ASSET, TRANSFER, args).unwrap();
    parse_transfer(&tx)
}

#[test]
fn a_run_applies_in_order_and_writes_final_values() {
    let (a, b) = ([1u8; 20], [2u8; 20]);
    let item = |from, to, amount| TransferItem { from, call: TransferCall { to, amount } };
    let items = [item(a, b, 60), item(a, b, 60), item(b, a, 50), item(a, a, 5)];
    let mut bal: HashMap<_, _> = [(a, 100u128)].into_iter().collect();
    let (out, writes) = execute_run(&items, &mut bal);
    assert_eq!(out[0].revert, None);
    assert_eq!(out[1].revert.as_deref(), Some("insufficient balance: have 40, need 60"));
    assert_eq!(out[2].revert, None);
    assert!(out[3].revert.is_none() && out[3].writes.is_empty(), "to oneself: ok, nothing written");
    assert_eq!(writes, vec![(balance_key(&a), 90u128.to_be_bytes()), (balance_key(&b), 10u128.to_be_bytes())]);
    let mut full: HashMap<_, _> = [(a, 10u128), (b, MAX_AMOUNT)].into_iter().collect();
    let (out, writes) = execute_run(&[item(a, b, 1)], &mut full);
    assert_eq!(out[0].revert.as_deref(), Some("recipient balance would overflow"));
    assert!(writes.is_empty());
}

#[test]
fn stored_balances_read_as_the_reference_reads_them() {
    assert_eq!(read_balance(None), Some(0));
    assert_eq!(read_balance(Some(b"\x01\x00")), Some(256));
    assert_eq!(read_balance(Some(&[0u8; 40])), Some(0));
    assert_eq!(read_balance(Some(&[1u8; 17])), None, "wider than u128: the reference path takes it");
}

#[test]
fn a_runs_receipts_and_hashes_are_those_of_one_transfer_at_a_time() {
    // execute_run hashes write sets and receipts in multi-buffer passes: every receipt and
    // hash must be what the one-message functions give, whatever the mix and the run length
    // (runs of 1..=40 cover partial groups of 8 and 16 lanes; reverts and self-transfers mixed in).
    let addr = |i: u8| [i; 20];
    for n in 1..=40usize {
        let items: Vec<_> = (0..n)
            .map(|i| {
                let (from, to) = (addr((i % 5) as u8), addr(((i * 3 + 1) % 5) as u8));
                TransferItem { from, call: TransferCall { to, amount: 30 + (i as u128 * 37) % 150 } }
            })
            .collect();
        let mut bal: HashMap<_, _> = (0..5u8).map(|i| (addr(i), 100u128 + u128::from(i) * 40)).collect();
        let (out, _) = execute_run(&items, &mut bal);
        assert_eq!(out.len(), n);
        for o in &out {
            let want = match &o.revert {
                Some(reason) => receipt_revert(reason),
                None => receipt_ok(&o.body, &o.writes),
            };
            assert_eq!(o.receipt, want);
            assert_eq!(o.receipt_hash, tfnode_sm3::hash(&o.receipt));
        }
        if n == 40 {
            assert!(out.iter().any(|o| o.revert.is_some()) && out.iter().any(|o| o.revert.is_none() && o.writes.is_empty()));
        }
    }
}
