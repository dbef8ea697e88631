#![no_main]
//! A core fed arbitrary peer messages: never panics, and never signs two different votes
//! for one round. Raw random bytes cannot carry a valid signature, so the target can also
//! sign a frame's message itself with the (forgeable) test keys: then quorum certificates,
//! timeout certificates and proposals verify, and the fuzzer reaches the paths behind the
//! signature checks, where rounds, heights and powers are added up.
//!
//! Input: frames `[flags: u8][len: u8][message bytes]`.
//!   flags & 0x80  sign every signature in the message as its claimed author
//!   flags & 0x40  fire our local timer for the current round first
//!   flags & 0x20  the length is two bytes (big-endian): a QC with three signatures does
//!                 not fit in 255 bytes
//!   flags & 0x1f  the sender: validator 1 + (flags & 0x1f) % 4 (4 is not a member). Never
//!                 0, the core itself: the host vouches for its own messages, which skip
//!                 the signature check, so a forged one would test the harness, not the core.
//! Without 0x80 a frame's bytes go to the core as they are, and the core must not sign
//! anything in answer (no valid proposal fits in random bytes). The host side is
//! simulated: every Persist is acknowledged, every payload request answered.
use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tfnode_consensus::codec::Decode;
use tfnode_consensus::crypto::insecure_test::{TestSigner, TestVerifier};
use tfnode_consensus::types::timeout_digest;
use tfnode_consensus::{Action, Block, Config, Core, Event, Message, QuorumCert, SafetyData, Signer, TimeoutCert, Validator, ValidatorSet, VoteData};

fn sign_qc(qc: &mut QuorumCert) {
    let d = qc.data.digest();
    for (a, s) in &mut qc.sigs {
        *s = TestSigner::for_node(*a).sign(&d);
    }
}

fn sign_tc(tc: &mut TimeoutCert) {
    sign_qc(&mut tc.high_qc);
    for (a, hqc, s) in &mut tc.sigs {
        *s = TestSigner::for_node(*a).sign(&timeout_digest(tc.epoch, tc.round, *hqc));
    }
}

fn sign_block(b: &mut Block) {
    sign_qc(&mut b.parent_qc);
    b.sig = TestSigner::for_node(b.proposer).sign(&b.id());
}

/// The message with every signature made valid for its claimed signer, or None if the
/// bytes do not decode.
fn signed(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut m = Message::decode(bytes).ok()?;
    match &mut m {
        Message::Proposal(p) => {
            sign_block(&mut p.block);
            if let Some(tc) = &mut p.tc {
                sign_tc(tc);
            }
        }
        Message::Vote(v) => v.sig = TestSigner::for_node(v.author).sign(&v.data.digest()),
        Message::Timeout(t) => {
            sign_qc(&mut t.high_qc);
            t.sig = TestSigner::for_node(t.author).sign(&t.digest());
        }
        Message::Tc(tc) => sign_tc(tc),
        Message::SyncRequest(_) => {}
        Message::SyncResponse(r) => {
            r.blocks.iter_mut().for_each(sign_block);
            r.qcs.iter_mut().for_each(sign_qc);
        }
    }
    Some(m.encode())
}

fuzz_target!(|data: &[u8]| {
    let vs = ValidatorSet::new(0, (0..4).map(|i| Validator { id: i, power: 1, public_key: TestSigner::for_node(i).public_key() }).collect()).unwrap();
    let g = Block::genesis(0, [0; 32]);
    let qc = QuorumCert::genesis(g.vote_data());
    let mut core = Core::new(Config::new(0), vs, g, qc, Box::new(TestSigner::for_node(0)), Arc::new(TestVerifier), None).unwrap();
    let mut queue: Vec<Event> = Vec::new();
    let mut votes: BTreeMap<(u64, u64), VoteData> = BTreeMap::new();
    let mut signed_any = false;
    let mut run = |core: &mut Core, ev: Event, signed_any: bool| {
        queue.push(ev);
        // Bounded: every acknowledgement releases what was held, which queues nothing new
        // beyond one more round of the same.
        let mut steps = 0;
        while let Some(ev) = queue.pop() {
            steps += 1;
            if steps > 64 {
                break;
            }
            for a in core.handle(ev) {
                match a {
                    Action::Persist { seq, bytes } => {
                        assert!(signed_any, "random bytes made the core sign");
                        let sd = SafetyData::from_bytes(&bytes).expect("the core persists decodable safety data");
                        if let Some(v) = sd.last_vote {
                            let first = votes.entry((v.data.epoch, v.data.round)).or_insert(v.data);
                            assert_eq!(*first, v.data, "two different votes signed for one round");
                        }
                        queue.push(Event::PersistedOk { seq });
                    }
                    Action::RequestPayload { round, .. } => {
                        queue.push(Event::Payload { round, digests: vec![[round as u8; 32]], timestamp_ms: round, reconfig: None })
                    }
                    _ => {}
                }
            }
        }
    };
    let start = core.start();
    for a in start {
        if let Action::RequestPayload { round, .. } = a {
            run(&mut core, Event::Payload { round, digests: vec![], timestamp_ms: 0, reconfig: None }, true);
        }
    }
    let mut rest = data;
    while rest.len() >= 2 {
        let flags = rest[0];
        let (len, head) = if flags & 0x20 != 0 && rest.len() >= 3 { (u16::from_be_bytes([rest[1], rest[2]]) as usize, 3) } else { (rest[1] as usize, 2) };
        let from = 1 + (flags & 0x1f) as u32 % 4;
        let end = (head + len).min(rest.len());
        let raw = &rest[head..end];
        rest = &rest[end..];
        if flags & 0x40 != 0 {
            // Our own timeout is a signature the core makes on its own account.
            signed_any = true;
            let round = core.round();
            run(&mut core, Event::LocalTimeout { round }, signed_any);
        }
        let bytes = if flags & 0x80 != 0 {
            signed_any = true;
            match signed(raw) {
                Some(b) => b,
                None => continue,
            }
        } else {
            raw.to_vec()
        };
        run(&mut core, Event::Message { from, bytes }, signed_any);
    }
});
