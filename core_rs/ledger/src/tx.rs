//! The signed transaction: one canonical encoding, defined here and nowhere else.
//!
//! ```text
//! 0x01 (version)
//! u32 len || chain id            1..=64 bytes
//! sender                         33 bytes, compressed SM2 public key (0x02/0x03 || x)
//! nonce                          u64: sender-chosen unique id (see "Replay" below)
//! expiry                         u64: last block height that may include the transaction
//! gas limit                      u64
//! u32 len || contract            1..=64 bytes of UTF-8
//! u32 len || method              1..=64 bytes of UTF-8
//! u32 len || args                0..=65536 opaque bytes (the contract runtime's value encoding)
//! signature                      64 bytes, SM2 r || s
//! ```
//!
//! The *body* is everything before the signature. The signer signs
//! `SM3(u32 len(tag) || "tfnode/tx" || body)` as the SM2 message M with the default user
//! id (as consensus signs its digests); the body starts with the version and the chain id,
//! so a transaction for one chain or format can never verify on another.
//!
//! Replay: a transaction commits at most once per `(sender, nonce)` ([`Transaction::replay_key`]),
//! and only at a height `<= expiry`. The node remembers committed replay keys only until their
//! expiry passes, and admits only expiries within a window above the current height
//! ([`Transaction::check_expiry`]): replay state is bounded by window x throughput, and a
//! sender may have many transactions in flight in any order (no per-sender sequence to stall).
//! The replay key leaves the signature out on purpose: SM2 signatures are randomised, so
//! re-signing one body gives a new transaction hash but the same replay key.
use rayon::prelude::*;

use crate::codec::{tagged_hash, ReadName, Reader, Writer};
use crate::error::{LedgerError, Result};
use crate::Hash;

pub const TX_VERSION: u8 = 1;
pub const MAX_CHAIN_ID_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_ARGS_LEN: usize = 64 * 1024;
pub const SENDER_LEN: usize = 33;
pub const SIGNATURE_LEN: usize = 64;
/// Fixed part: version, 4 length prefixes, sender, nonce, expiry, gas limit, signature.
const FIXED_LEN: usize = 1 + 4 * 4 + SENDER_LEN + 3 * 8 + SIGNATURE_LEN;
/// Smallest valid encoding: 1-byte chain id, contract and method, empty args.
pub const MIN_TX_LEN: usize = FIXED_LEN + 3;
/// Largest valid encoding.
pub const MAX_TX_LEN: usize = FIXED_LEN + MAX_CHAIN_ID_LEN + 2 * MAX_NAME_LEN + MAX_ARGS_LEN;

const SIGN_TAG: &[u8] = b"tfnode/tx";
const REPLAY_TAG: &[u8] = b"tfnode/tx-replay";

/// Items per rayon task in [`decode_and_verify_batch`]: one verification is 20-40 us, so
/// 8 amortise the scheduling cost and still spread small batches over both cores.
const MIN_TASK: usize = 8;
/// Most transactions per `tfnode_sm2::verify_cached_many` call in [`verify_raws`] (eight
/// groups of eight lanes); smaller batches are cut finer, in multiples of 8, so that they
/// still spread over every core.
const VERIFY_CHUNK: usize = 64;

/// Chunk length for `n` signature checks: n spread over the rayon threads, rounded up to
/// a multiple of 8 (a full group of lanes), between 8 and [`VERIFY_CHUNK`].
fn verify_chunk(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1)).next_multiple_of(8).clamp(8, VERIFY_CHUNK)
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transaction {
    pub chain_id: Vec<u8>,
    pub sender: [u8; SENDER_LEN],
    pub nonce: u64,
    pub expiry: u64,
    pub gas_limit: u64,
    pub contract: String,
    pub method: String,
    pub args: Vec<u8>,
    pub signature: [u8; SIGNATURE_LEN],
}

fn check_name(what: &'static str, v: &[u8], cap: usize) -> Result<()> {
    if v.is_empty() {
        return Err(LedgerError::Empty { what });
    }
    if v.len() > cap {
        return Err(LedgerError::TooLong { what, len: v.len(), cap });
    }
    Ok(())
}

impl Transaction {
    /// An unsigned transaction (sender and signature zero until [`Transaction::sign`]),
    /// with every size checked against the caps the decoder enforces.
    pub fn new(chain_id: &[u8], nonce: u64, expiry: u64, gas_limit: u64, contract: &str, method: &str, args: &[u8]) -> Result<Transaction> {
        let tx = Transaction {
            chain_id: chain_id.to_vec(),
            sender: [0; SENDER_LEN],
            nonce,
            expiry,
            gas_limit,
            contract: contract.to_owned(),
            method: method.to_owned(),
            args: args.to_vec(),
            signature: [0; SIGNATURE_LEN],
        };
        tx.check_sizes()?;
        Ok(tx)
    }

    /// The caps of the encoding (the decoder checks the same; fields are public, so a
    /// hand-built value is checked again here before it is signed).
    pub fn check_sizes(&self) -> Result<()> {
        check_name("chain id", &self.chain_id, MAX_CHAIN_ID_LEN)?;
        check_name("contract name", self.contract.as_bytes(), MAX_NAME_LEN)?;
        check_name("method name", self.method.as_bytes(), MAX_NAME_LEN)?;
        if self.args.len() > MAX_ARGS_LEN {
            return Err(LedgerError::TooLong { what: "args", len: self.args.len(), cap: MAX_ARGS_LEN });
        }
        Ok(())
    }

    fn write_body(&self, w: &mut Writer) {
        w.u8(TX_VERSION);
        w.bytes(&self.chain_id);
        w.raw(&self.sender);
        w.u64(self.nonce);
        w.u64(self.expiry);
        w.u64(self.gas_limit);
        w.bytes(self.contract.as_bytes());
        w.bytes(self.method.as_bytes());
        w.bytes(&self.args);
    }

    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.chain_id.len() + self.contract.len() + self.method.len() + self.args.len()
    }

    /// The canonical bytes (body || signature).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.write_body(&mut w);
        w.raw(&self.signature);
        w.buf
    }

    /// Decode canonical bytes: version, caps (before any allocation), UTF-8 names, the
    /// sender key's prefix, no trailing bytes. The signature is *not* checked here.
    pub fn decode(b: &[u8]) -> Result<Transaction> {
        if b.len() > MAX_TX_LEN {
            return Err(LedgerError::TooLong { what: "transaction", len: b.len(), cap: MAX_TX_LEN });
        }
        let mut r = Reader::new(b);
        r.version("transaction", TX_VERSION)?;
        let chain_id = r.bytes("chain id", MAX_CHAIN_ID_LEN)?;
        if chain_id.is_empty() {
            return Err(LedgerError::Empty { what: "chain id" });
        }
        let sender: [u8; SENDER_LEN] = r.array()?;
        if sender[0] != 0x02 && sender[0] != 0x03 {
            return Err(LedgerError::SenderPrefix(sender[0]));
        }
        let nonce = r.u64()?;
        let expiry = r.u64()?;
        let gas_limit = r.u64()?;
        let contract = r.name("contract name", MAX_NAME_LEN)?;
        let method = r.name("method name", MAX_NAME_LEN)?;
        let args = r.bytes("args", MAX_ARGS_LEN)?.to_vec();
        let signature = r.array()?;
        r.finish()?;
        Ok(Transaction { chain_id: chain_id.to_vec(), sender, nonce, expiry, gas_limit, contract, method, args, signature })
    }

    /// SM3 of the full canonical encoding: the transaction's id in blocks, batches and indexes.
    pub fn hash(&self) -> Hash {
        tfnode_sm3::hash(&self.encode())
    }

    /// The digest the sender signs: `SM3(u32 len(tag) || "tfnode/tx" || body)`.
    pub fn signing_digest(&self) -> Hash {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.write_body(&mut w);
        tagged_hash(SIGN_TAG, &[&w.buf])
    }

    /// `SM3(u32 len(tag) || "tfnode/tx-replay" || sender || nonce)`: at most one
    /// transaction per replay key ever commits.
    pub fn replay_key(&self) -> Hash {
        tagged_hash(REPLAY_TAG, &[&self.sender, &self.nonce.to_be_bytes()])
    }

    /// Set the sender to `sk`'s public key and sign (hedged random SM2 nonce).
    pub fn sign(&mut self, sk: &tfnode_sm2::SecretKey) -> Result<()> {
        self.check_sizes()?;
        self.sender = sk.public_key().to_compressed();
        let sig = sk.sign(&self.signing_digest(), tfnode_sm2::DEFAULT_UID);
        self.signature = sig.to_bytes();
        Ok(())
    }

    /// Check the signature through the SM2 known-key cache (a busy sender's key table is
    /// built once). An invalid sender point is reported as a bad signature.
    pub fn verify(&self) -> Result<()> {
        self.verify_digest(&self.signing_digest())
    }

    /// [`Transaction::verify`] for a transaction decoded from `raw`: the signed digest is
    /// hashed over `raw`'s body in place (the decoder accepts only the canonical encoding, so
    /// the body is `raw` less its trailing signature) instead of over a re-encoded copy.
    pub fn verify_raw(&self, raw: &[u8]) -> Result<()> {
        debug_assert_eq!(raw.len(), self.encoded_len());
        self.verify_digest(&tagged_hash(SIGN_TAG, &[&raw[..raw.len() - SIGNATURE_LEN]]))
    }

    fn verify_digest(&self, d: &Hash) -> Result<()> {
        self.signature_verdict(tfnode_sm2::verify_cached(&self.sender, d, tfnode_sm2::DEFAULT_UID, &self.signature))
    }

    /// The result for a signature check's outcome.
    fn signature_verdict(&self, ok: bool) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(LedgerError::BadSignature { sender: hex(&self.sender), nonce: self.nonce })
        }
    }

    /// Stateless admission checks beyond decoding: sizes and the chain id.
    pub fn check_stateless(&self, chain_id: &[u8]) -> Result<()> {
        self.check_sizes()?;
        if self.chain_id != chain_id {
            return Err(LedgerError::WrongChain {
                got: String::from_utf8_lossy(&self.chain_id).into_owned(),
                expected: String::from_utf8_lossy(chain_id).into_owned(),
            });
        }
        Ok(())
    }

    /// May a block at `height` include this transaction, and is its expiry within
    /// `window` blocks (the bound on the node's replay memory)?
    pub fn check_expiry(&self, height: u64, window: u64) -> Result<()> {
        if self.expiry < height {
            return Err(LedgerError::Expired { expiry: self.expiry, height });
        }
        if self.expiry - height > window {
            return Err(LedgerError::ExpiryTooFar { expiry: self.expiry, height, window });
        }
        Ok(())
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decode, check the chain id and verify the signature of each raw transaction, on all
/// cores. Each item gets its own result, in input order.
/// As [`decode_and_verify_batch`] without the signature check: for a batch whose
/// signatures a certificate of f+1 validators' attestations vouches for (docs/mempool.md,
/// "Verify once per quorum"). Decoding and the stateless checks still run, so what a node
/// stores is well formed whichever way it accepted the batch.
pub fn decode_and_check_batch(raw: &[&[u8]], chain_id: &[u8]) -> Vec<Result<Transaction>> {
    raw.par_iter()
        .with_min_len(MIN_TASK)
        .map(|b| {
            let tx = Transaction::decode(b)?;
            tx.check_stateless(chain_id)?;
            Ok(tx)
        })
        .collect()
}

/// The signed digest of each raw transaction as [`Transaction::verify_raw`] computes it
/// (`SM3(u32 len(tag) || "tfnode/tx" || raw less its trailing signature)`), several at once
/// in SIMD lanes. Only meaningful for a raw that decodes (the decoder accepts only the
/// canonical encoding, so its body is the raw less the signature); a raw shorter than a
/// signature gets the digest of an empty body, which no decoded transaction uses.
pub fn raw_signing_digests(raw: &[&[u8]]) -> Vec<Hash> {
    let mut prefix = (SIGN_TAG.len() as u32).to_be_bytes().to_vec();
    prefix.extend_from_slice(SIGN_TAG);
    let bodies: Vec<&[u8]> = raw.iter().map(|b| &b[..b.len().saturating_sub(SIGNATURE_LEN)]).collect();
    crate::batch::hash_many_prefixed(&prefix, &bodies)
}

/// Verify each decoded transaction's signature against its raw bytes: the signed digests
/// hashed several at once in SIMD lanes ([`raw_signing_digests`]), then the SM2 checks on
/// all cores. `txs[i]`: the transaction decoded from `raw[i]`, or None to skip it (its
/// verdict is then Ok). The verdicts are those of [`Transaction::verify_raw`].
pub fn verify_raws(txs: &[Option<&Transaction>], raw: &[&[u8]]) -> Vec<Result<()>> {
    assert_eq!(txs.len(), raw.len(), "one transaction slot per raw");
    let todo: Vec<usize> = (0..raw.len()).filter(|&i| txs[i].is_some()).collect();
    let bodies: Vec<&[u8]> = todo.iter().map(|&i| raw[i]).collect();
    let digests = raw_signing_digests(&bodies);
    let mut out: Vec<Result<()>> = (0..raw.len()).map(|_| Ok(())).collect();
    // Chunks of up to VERIFY_CHUNK on rayon; each chunk is one `verify_cached_many` call, which
    // verifies cached keys eight at once in IFMA lanes where the CPU has them (the
    // verdicts are those of `verify_cached`, item by item).
    let chunk_len = verify_chunk(todo.len());
    let verdicts: Vec<Result<()>> = todo
        .par_chunks(chunk_len)
        .zip(digests.par_chunks(chunk_len))
        .flat_map_iter(|(idx, ds)| {
            let chunk: Vec<&Transaction> = idx.iter().map(|&i| txs[i].expect("only decoded transactions are listed")).collect();
            let items: Vec<(&[u8], &[u8], &[u8])> = chunk
                .iter()
                .zip(idx.iter().zip(ds))
                .map(|(tx, (&i, d))| {
                    // `d` is the signed digest raw_signing_digests computed from raw[i], the
                    // bytes this transaction was decoded from.
                    debug_assert_eq!(raw[i].len(), tx.encoded_len());
                    (&tx.sender[..], &d[..], &tx.signature[..])
                })
                .collect();
            let ok = tfnode_sm2::verify_cached_many(&items);
            chunk.into_iter().zip(ok).map(|(tx, ok)| tx.signature_verdict(ok)).collect::<Vec<_>>()
        })
        .collect();
    for (&i, v) in todo.iter().zip(verdicts) {
        out[i] = v;
    }
    out
}

pub fn decode_and_verify_batch(raw: &[&[u8]], chain_id: &[u8]) -> Vec<Result<Transaction>> {
    let decoded = decode_and_check_batch(raw, chain_id);
    let txs: Vec<Option<&Transaction>> = decoded.iter().map(|r| r.as_ref().ok()).collect();
    let verdicts = verify_raws(&txs, raw);
    decoded.into_iter().zip(verdicts).map(|(tx, v)| tx.and_then(|tx| v.map(|()| tx))).collect()
}
