//! Encoding round trips, hostile lengths, and the published test vectors.
use crate::block::{Block, Proposal};
use crate::codec::{Decode, Encode};
use crate::crypto::insecure_test::TestSigner;
use crate::crypto::Signature;
use crate::crypto::Signer;
use crate::message::{Evidence, Message, MessageKind, SyncRequest, SyncResponse};
use crate::types::*;

fn vset() -> ValidatorSet {
    let vs = (0..4).map(|i| Validator { id: i, power: 1, public_key: TestSigner::for_node(i).public_key() }).collect();
    ValidatorSet::new(0, vs).unwrap()
}

/// Deterministic sample messages; the docs publish their bytes and digests.
pub fn samples() -> Vec<(&'static str, Message)> {
    let g = Block::genesis(0, [7; 32]);
    let gqc = QuorumCert::genesis(g.vote_data());
    let mut b = Block {
        epoch: 0,
        round: 1,
        height: 1,
        proposer: 1,
        timestamp_ms: 1_700_000_000_000,
        parent_qc: gqc.clone(),
        payload: vec![[0xab; 32], [0xcd; 32]],
        exec_height: 0,
        exec_root: [7; 32],
        reconfig: None,
        sig: Signature([0; 64]),
    };
    b.sig = TestSigner::for_node(1).sign(&b.id());
    let vd = b.vote_data();
    let votes: Vec<Vote> = (0..3).map(|i| Vote { data: vd, author: i, sig: TestSigner::for_node(i).sign(&vd.digest()) }).collect();
    let qc = QuorumCert { data: vd, sigs: votes.iter().map(|v| (v.author, v.sig)).collect() };
    let to = |i: u32| Timeout { epoch: 0, round: 2, high_qc: qc.clone(), author: i, sig: TestSigner::for_node(i).sign(&timeout_digest(0, 2, 1)) };
    let tc = TimeoutCert { epoch: 0, round: 2, high_qc: qc.clone(), sigs: (0..3).map(|i| (i, 1, to(i).sig)).collect() };
    let mut b3 = Block {
        epoch: 0,
        round: 3,
        height: 2,
        proposer: 3,
        timestamp_ms: 1_700_000_000_500,
        parent_qc: qc.clone(),
        payload: vec![],
        exec_height: 0,
        exec_root: [7; 32],
        reconfig: Some(vset()),
        sig: Signature([0; 64]),
    };
    b3.sig = TestSigner::for_node(3).sign(&b3.id());
    vec![
        ("proposal", Message::Proposal(Proposal { block: b.clone(), tc: None })),
        ("vote", Message::Vote(votes[0].clone())),
        ("timeout", Message::Timeout(to(2))),
        ("tc", Message::Tc(tc.clone())),
        ("proposal_with_tc_and_reconfig", Message::Proposal(Proposal { block: b3, tc: Some(tc) })),
        ("sync_request", Message::SyncRequest(SyncRequest { epoch: 0, block_id: b.id(), have_height: 0 })),
        ("sync_response", Message::SyncResponse(SyncResponse { blocks: vec![b], qcs: vec![qc] })),
    ]
}

#[test]
fn round_trip_and_validity() {
    let vs = vset();
    let v = crate::crypto::insecure_test::TestVerifier;
    let g = Block::genesis(0, [7; 32]).vote_data();
    for (name, m) in samples() {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), m, "{name}");
        match &m {
            Message::Tc(tc) => {
                tc.verify(&vs, &v).unwrap();
                tc.high_qc.verify(&vs, &v, &g).unwrap()
            }
            Message::Proposal(p) => p.block.parent_qc.verify(&vs, &v, &g).unwrap(),
            _ => {}
        }
        // Every strict prefix fails cleanly, and so does one trailing byte.
        for cut in 0..bytes.len() {
            assert!(Message::decode(&bytes[..cut]).is_err(), "{name} prefix {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Message::decode(&longer).is_err());
    }
}

#[test]
fn peeked_kind_is_the_decoded_kind() {
    for (name, m) in samples() {
        let bytes = m.encode();
        assert_eq!(MessageKind::peek(&bytes), Some(m.kind()), "{name}");
        assert_eq!(bytes[1], m.kind() as u8, "{name}");
    }
    // A peek judges only the header: a wrong version, an unknown tag or a short frame is None.
    assert_eq!(MessageKind::peek(&[2, 1]), None);
    assert_eq!(MessageKind::peek(&[1, 9]), None);
    assert_eq!(MessageKind::peek(&[1]), None);
    assert_eq!(MessageKind::peek(&[1, 1]), Some(MessageKind::Proposal));
    for k in MessageKind::ALL {
        assert_eq!(MessageKind::from_tag(k as u8), Some(k));
    }
}

#[test]
fn sync_response_from_stored_encodings_is_the_encoded_message() {
    let all = samples();
    let Message::SyncResponse(s) = &all[6].1 else { panic!("sample 6 is the sync response") };
    let blocks: Vec<Vec<u8>> = s.blocks.iter().map(|b| b.to_bytes()).collect();
    let qcs: Vec<Vec<u8>> = s.qcs.iter().map(|q| q.to_bytes()).collect();
    let stored = SyncResponse::encode_stored(&blocks.iter().map(Vec::as_slice).collect::<Vec<_>>(), &qcs.iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert_eq!(stored, all[6].1.encode());
    assert_eq!(SyncResponse::encode_stored(&[], &[]), [1, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn hostile_lengths_do_not_allocate() {
    // version 1, tag 6 (sync response), 4 billion blocks: rejected on the cap, not by OOM.
    let e = Message::decode(&[1, 6, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(e.to_string(), "sync blocks: length 4294967295 exceeds cap 64");
    // Under the cap but longer than the input: rejected before allocating.
    let e = Message::decode(&[1, 6, 0, 0, 0, 60]).unwrap_err();
    assert!(e.to_string().starts_with("truncated input"), "{e}");
    assert!(Message::decode(&[2, 1]).unwrap_err().to_string().contains("version 2"));
    assert!(Message::decode(&[1, 9]).unwrap_err().to_string().contains("tag 9"));
}

#[test]
fn evidence_round_trip() {
    let Message::Vote(a) = &samples()[1].1 else { panic!() };
    let mut b = a.clone();
    b.data.block_id = [1; 32];
    let e = Evidence::DoubleVote(a.clone(), b);
    assert_eq!(Evidence::decode(&e.encode()).unwrap(), e);
}

#[test]
fn quorum_arithmetic() {
    let vs = vset();
    assert_eq!((vs.quorum(), vs.one_honest()), (3, 2));
    let v = ValidatorSet::new(1, vec![Validator { id: 9, power: 10, public_key: vec![] }, Validator { id: 2, power: 5, public_key: vec![] }]).unwrap();
    assert_eq!((v.total_power(), v.quorum()), (15, 11));
    assert_eq!(ValidatorSet::from_bytes(&v.to_bytes()).unwrap(), v);
    assert!(round_add(u64::MAX, 1).is_err());
}

fn vectors_markdown() -> String {
    let mut s = String::from("<!-- vectors:begin (generated by `UPDATE_VECTORS=1 cargo test -p tfnode-consensus vectors`) -->\n");
    for (name, m) in samples() {
        let b = m.encode();
        s += &format!("\n#### {name} ({} bytes)\n\nSM3: `{}`\n\n```\n", b.len(), hex::encode(tfnode_sm3::hash(&b)));
        for chunk in hex::encode(&b).as_bytes().chunks(96) {
            s += std::str::from_utf8(chunk).unwrap();
            s.push('\n');
        }
        s += "```\n";
    }
    s + "<!-- vectors:end -->"
}

/// The vectors in docs/consensus.md must match the code; `UPDATE_VECTORS=1` rewrites them.
#[test]
fn vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/consensus.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let gen = vectors_markdown();
    let (Some(a), Some(b)) = (doc.find("<!-- vectors:begin"), doc.find("<!-- vectors:end -->")) else {
        if std::env::var("UPDATE_VECTORS").is_ok() {
            std::fs::write(path, format!("{doc}\n{gen}\n")).unwrap();
            return;
        }
        panic!("docs/consensus.md has no vectors section; run with UPDATE_VECTORS=1");
    };
    let cur = &doc[a..b + "<!-- vectors:end -->".len()];
    if cur != gen {
        assert!(std::env::var("UPDATE_VECTORS").is_ok(), "test vectors in docs/consensus.md are stale; run with UPDATE_VECTORS=1");
        std::fs::write(path, doc.replace(cur, &gen)).unwrap();
    }
}

/// The fuzz targets' properties on seeded mutations of the samples: decoding never
/// panics, and whatever decodes re-encodes to the same bytes (one encoding per value).
#[test]
fn mutated_samples_decode_canonically_or_fail() {
    let mut rng = crate::sim::Rng::new(9);
    for (_, m) in samples() {
        let base = m.encode();
        for _ in 0..3_000 {
            let mut b = base.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len() as u64) as usize;
                match rng.below(3) {
                    0 => b[i] = rng.next_u64() as u8,
                    1 => b.truncate(i),
                    _ => b.insert(i, rng.next_u64() as u8),
                }
                if b.is_empty() {
                    break;
                }
            }
            if let Ok(d) = Message::decode(&b) {
                assert_eq!(d.encode(), b);
            }
        }
    }
}
