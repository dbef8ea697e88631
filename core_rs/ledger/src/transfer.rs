//! The native `asset.transfer`: the hot path of plain transfers, executed without the
//! Python contract runtime, producing byte for byte what `tfnode/execution/asset.py` (the
//! reference) produces: the same balance writes, the same receipt encoding and hash.
//!
//! Only transfers whose outcome this module can decide exactly take this path
//! ([`parse_transfer`]): contract `asset`, method `transfer`, a gas limit of at least
//! [`TRANSFER_GAS`], and call arguments in one of the two canonical shapes of the runtime's
//! value encoding (`tfnode/runtime/encoding.py`, `tfnode/execution/args.py`):
//!
//! ```text
//! 0x01 'L' 2 'L' 2 <to> <amount> 'D' 0              positional: transfer(to, amount)
//! 0x01 'L' 2 'L' 0 'D' 2 'S' 2 "to" <to> 'S' 6 "amount" <amount>    keywords, sorted keys
//! <to>     = 'S' 42 "0x" + 40 lowercase hex digits
//! <amount> = 'I' n (1..=16) minimal two's-complement big-endian bytes, 0 < amount < 2^127
//! ```
//!
//! Anything else (another method, bad or odd arguments, a gas limit under the price) goes
//! back to the Python reference, which answers it with its own receipt; so this module never
//! has to reproduce an error message of the generic decoder. What it decides itself: success,
//! `insufficient balance: have H, need A`, and `recipient balance would overflow`.
//!
//! Receipts (`Receipt.encode` in `tfnode/runtime/executor.py`): version 1, then
//! `["receipt", status, gas_used, return_value, revert_reason, events, writes_digest]` with
//! `writes_digest = SM3(encode([[key, value], ...]))`. The event of a transfer is
//! `["asset", "Transfer", {"from": sender, "to": to, "amount": amount}]`.
use std::collections::{HashMap, HashSet};

use crate::tx::Transaction;
use crate::Hash;

pub const ASSET: &str = "asset";
pub const TRANSFER: &str = "transfer";
/// The flat gas price of a transfer (`asset.TRANSFER_GAS`).
pub const TRANSFER_GAS: u64 = 2_000;
/// The largest balance or amount (`asset.MAX_AMOUNT`).
pub const MAX_AMOUNT: u128 = (1 << 127) - 1;
/// State key of a balance: this prefix and the 20-byte address.
pub const BALANCE_PREFIX: &[u8; 3] = b"\x00a/";
pub const BALANCE_KEY_LEN: usize = 23;
/// Balances are stored as 16-byte big-endian integers.
pub const BALANCE_LEN: usize = 16;

pub type Address = [u8; 20];
pub type BalanceKey = [u8; BALANCE_KEY_LEN];

/// What a transfer asks for, once its arguments are known to be well formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferCall {
    pub to: Address,
    pub amount: u128,
}

pub fn balance_key(a: &Address) -> BalanceKey {
    let mut k = [0u8; BALANCE_KEY_LEN];
    k[..3].copy_from_slice(BALANCE_PREFIX);
    k[3..].copy_from_slice(a);
    k
}

/// `"0x" + 40 lowercase hex digits` as the address it names; None for anything else.
pub fn parse_address(s: &[u8]) -> Option<Address> {
    if s.len() != 42 || &s[..2] != b"0x" {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut a = [0u8; 20];
    for (i, out) in a.iter_mut().enumerate() {
        *out = (digit(s[2 + 2 * i])? << 4) | digit(s[3 + 2 * i])?;
    }
    Some(a)
}

/// `"0x" + 40 lowercase hex digits` (the host's address strings).
pub fn address_str(a: &Address) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(42);
    s.push_str("0x");
    for &b in a {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The transfer a transaction makes, if it takes the native path (module doc); None
/// sends it to the reference path.
pub fn parse_transfer(tx: &Transaction) -> Option<TransferCall> {
    if tx.contract != ASSET || tx.method != TRANSFER || tx.gas_limit < TRANSFER_GAS {
        return None;
    }
    parse_args(&tx.args)
}

fn parse_args(a: &[u8]) -> Option<TransferCall> {
    const POSITIONAL: &[u8] = b"\x01L\x02L\x02";
    const KEYWORDS: &[u8] = b"\x01L\x02L\x00D\x02S\x02to";
    if let Some(rest) = a.strip_prefix(POSITIONAL) {
        let (to, rest) = read_address(rest)?;
        let (amount, rest) = read_amount(rest)?;
        return (rest == b"D\x00").then_some(TransferCall { to, amount });
    }
    let rest = a.strip_prefix(KEYWORDS)?;
    let (to, rest) = read_address(rest)?;
    let rest = rest.strip_prefix(b"S\x06amount")?;
    let (amount, rest) = read_amount(rest)?;
    rest.is_empty().then_some(TransferCall { to, amount })
}

fn read_address(b: &[u8]) -> Option<(Address, &[u8])> {
    let rest = b.strip_prefix(b"S\x2a")?;
    if rest.len() < 42 {
        return None;
    }
    Some((parse_address(&rest[..42])?, &rest[42..]))
}

/// A positive int of at most 127 bits in its one canonical form (length byte 1..=16, no
/// redundant leading byte, sign bit clear).
fn read_amount(b: &[u8]) -> Option<(u128, &[u8])> {
    let rest = b.strip_prefix(b"I")?;
    let n = *rest.first()? as usize;
    if n == 0 || n > BALANCE_LEN || rest.len() < 1 + n {
        return None;
    }
    let raw = &rest[1..1 + n];
    if raw[0] >= 0x80 || (n > 1 && raw[0] == 0 && raw[1] < 0x80) {
        return None; // negative, or not minimal
    }
    let v = raw.iter().fold(0u128, |v, &x| (v << 8) | u128::from(x));
    (v > 0).then_some((v, &rest[1 + n..]))
}

/// A stored balance as a number; None when it does not fit a u128 (never written by this
/// module or the reference, but the reference would still read it: the caller falls back).
pub fn read_balance(raw: Option<&[u8]>) -> Option<u128> {
    let Some(raw) = raw else { return Some(0) };
    let lead = raw.iter().take_while(|&&b| b == 0).count();
    let sig = &raw[lead..];
    if sig.len() > BALANCE_LEN {
        return None;
    }
    Some(sig.iter().fold(0u128, |v, &x| (v << 8) | u128::from(x)))
}

fn uvarint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn enc_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'S');
    uvarint(out, s.len());
    out.extend_from_slice(s);
}

fn enc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'B');
    uvarint(out, b.len());
    out.extend_from_slice(b);
}

/// `'I'` and the minimal two's-complement body of a non-negative int.
fn enc_uint(out: &mut Vec<u8>, v: u128) {
    out.push(b'I');
    if v == 0 {
        out.push(0);
        return;
    }
    let be = v.to_be_bytes();
    let lead = be.iter().take_while(|&&b| b == 0).count();
    let body = &be[lead..];
    let pad = body[0] >= 0x80; // room for the sign bit
    uvarint(out, body.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(body);
}

/// `encode({"from": sender, "to": to, "amount": amount})`: the Transfer event's fields,
/// keys in the order of their encodings ("S\x02to" < "S\x04from" < "S\x06amount").
pub fn event_body(from: &str, to: &str, amount: u128) -> Vec<u8> {
    let mut out = Vec::with_capacity(120);
    out.extend_from_slice(b"D\x03");
    enc_str(&mut out, b"to");
    enc_str(&mut out, to.as_bytes());
    enc_str(&mut out, b"from");
    enc_str(&mut out, from.as_bytes());
    enc_str(&mut out, b"amount");
    enc_uint(&mut out, amount);
    out
}

fn receipt_head(out: &mut Vec<u8>, status: &str, reason: &str) {
    out.extend_from_slice(b"\x01L\x07S\x07receipt");
    enc_str(out, status.as_bytes());
    enc_uint(out, u128::from(TRANSFER_GAS));
    out.push(b'N'); // no return value
    enc_str(out, reason.as_bytes());
}

/// The encoded write set a successful transfer's receipt commits to (its SM3 hash is the
/// receipt's last field); `writes` sorted by key (empty for a transfer to oneself).
fn write_set(writes: &[(BalanceKey, [u8; BALANCE_LEN])]) -> Vec<u8> {
    let mut w = Vec::with_capacity(2 + writes.len() * 46);
    w.push(b'L');
    uvarint(&mut w, writes.len());
    for (k, v) in writes {
        w.extend_from_slice(b"L\x02");
        enc_bytes(&mut w, k);
        enc_bytes(&mut w, v);
    }
    w
}

/// The receipt of a successful transfer whose write set hashes to `writes_hash`.
fn receipt_ok_hashed(body: &[u8], writes_hash: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(200);
    receipt_head(&mut out, "ok", "");
    out.extend_from_slice(b"L\x01L\x03");
    enc_str(&mut out, ASSET.as_bytes());
    enc_str(&mut out, b"Transfer");
    out.extend_from_slice(body);
    enc_bytes(&mut out, writes_hash);
    out
}

/// The receipt of a successful transfer; `writes` sorted by key (empty for a transfer to oneself).
pub fn receipt_ok(body: &[u8], writes: &[(BalanceKey, [u8; BALANCE_LEN])]) -> Vec<u8> {
    receipt_ok_hashed(body, &tfnode_sm3::hash(&write_set(writes)))
}

/// The receipt of a transfer that reverted: no events, no writes.
pub fn receipt_revert(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(80 + reason.len());
    receipt_head(&mut out, "revert", reason);
    out.extend_from_slice(b"L\x00");
    enc_bytes(&mut out, &tfnode_sm3::hash(b"L\x00"));
    out
}

/// One transfer of a run: the sender's address (as the host's address rule gives it) and the call.
#[derive(Clone, Copy, Debug)]
pub struct TransferItem {
    pub from: Address,
    pub call: TransferCall,
}

/// What one transfer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferOutcome {
    /// None: success; else the revert reason.
    pub revert: Option<String>,
    /// The sender's and the recipient's address strings (success only, else empty).
    pub from: String,
    pub to: String,
    /// The event's encoded fields (success only).
    pub body: Vec<u8>,
    /// The receipt's write set, sorted by key (success only).
    pub writes: Vec<(BalanceKey, [u8; BALANCE_LEN])>,
    pub receipt: Vec<u8>,
    pub receipt_hash: Hash,
}

/// The balances a run of transfers reads, in first-use order, each once.
pub fn run_keys(items: &[TransferItem]) -> Vec<Address> {
    let mut seen = HashSet::with_capacity(items.len() * 2);
    let mut out = Vec::new();
    for it in items {
        for a in [it.from, it.call.to] {
            if seen.insert(a) {
                out.push(a);
            }
        }
    }
    out
}

/// Execute a run of transfers in order over `balances` (every address of [`run_keys`], as
/// read before the run). Returns each transfer's outcome and the run's state writes: the
/// final value of every balance a successful transfer wrote, sorted by key.
pub fn execute_run(items: &[TransferItem], balances: &mut HashMap<Address, u128>) -> (Vec<TransferOutcome>, Vec<(BalanceKey, [u8; BALANCE_LEN])>) {
    let mut dirty: HashSet<Address> = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let (from, to, amount) = (it.from, it.call.to, it.call.amount);
        let have = balances.get(&from).copied().unwrap_or(0);
        let (revert, writes) = if have < amount {
            (Some(format!("insufficient balance: have {have}, need {amount}")), Vec::new())
        } else if from == to {
            (None, Vec::new())
        } else {
            let had = balances.get(&to).copied().unwrap_or(0);
            match had.checked_add(amount).filter(|&v| v <= MAX_AMOUNT) {
                None => (Some("recipient balance would overflow".to_owned()), Vec::new()),
                Some(new_to) => {
                    let new_from = have - amount;
                    balances.insert(from, new_from);
                    balances.insert(to, new_to);
                    dirty.insert(from);
                    dirty.insert(to);
                    let mut w = vec![(balance_key(&from), new_from.to_be_bytes()), (balance_key(&to), new_to.to_be_bytes())];
                    w.sort_unstable();
                    (None, w)
                }
            }
        };
        let (from_s, to_s, body, receipt) = match &revert {
            Some(reason) => (String::new(), String::new(), Vec::new(), receipt_revert(reason)),
            None => {
                let (f, t) = (address_str(&from), address_str(&to));
                let body = event_body(&f, &t, amount);
                (f, t, body, Vec::new()) // the receipt once its write set is hashed, below
            }
        };
        out.push(TransferOutcome { revert, from: from_s, to: to_s, body, writes, receipt, receipt_hash: [0; 32] });
    }
    // The hashes of the run, a handful of SM3 blocks each, in multi-buffer passes (8 or 16
    // messages side by side) rather than one message after another: first the successful
    // transfers' write sets, then every receipt (a receipt holds its write set's hash).
    let ok: Vec<usize> = (0..out.len()).filter(|&i| out[i].revert.is_none()).collect();
    let sets: Vec<Vec<u8>> = ok.iter().map(|&i| write_set(&out[i].writes)).collect();
    let mut set_hashes = vec![[0u8; 32]; sets.len()];
    tfnode_sm3::hash_many_into(&sets.iter().map(Vec::as_slice).collect::<Vec<_>>(), &mut set_hashes);
    for (&i, h) in ok.iter().zip(&set_hashes) {
        out[i].receipt = receipt_ok_hashed(&out[i].body, h);
    }
    let mut receipt_hashes = vec![[0u8; 32]; out.len()];
    tfnode_sm3::hash_many_into(&out.iter().map(|o| o.receipt.as_slice()).collect::<Vec<_>>(), &mut receipt_hashes);
    for (o, h) in out.iter_mut().zip(receipt_hashes) {
        o.receipt_hash = h;
    }
    let mut writes: Vec<_> = dirty.iter().map(|a| (balance_key(a), balances[a].to_be_bytes())).collect();
    writes.sort_unstable();
    (out, writes)
}
