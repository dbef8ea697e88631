//! The core's contract with its host: persist before release, evidence, epochs, sync.
use std::sync::Arc;

use crate::block::{Block, Proposal};
use crate::core::{Config, Core};
use crate::crypto::insecure_test::{TestSigner, TestVerifier};
use crate::crypto::{Signature, Signer};
use crate::event::{Action, Event};
use crate::message::Message;
use crate::sim::{simulate, SimConfig};
use crate::types::*;

fn vset() -> ValidatorSet {
    ValidatorSet::new(0, (0..4).map(|i| Validator { id: i, power: 1, public_key: TestSigner::for_node(i).public_key() }).collect()).unwrap()
}

fn core(me: NodeId) -> Core {
    let g = Block::genesis(0, [0; 32]);
    let qc = QuorumCert::genesis(g.vote_data());
    Core::new(Config::new(me), vset(), g, qc, Box::new(TestSigner::for_node(me)), Arc::new(TestVerifier), None).unwrap()
}

fn proposal_r1() -> Block {
    let g = Block::genesis(0, [0; 32]);
    let mut b = Block {
        epoch: 0,
        round: 1,
        height: 1,
        proposer: 1,
        timestamp_ms: 5,
        parent_qc: QuorumCert::genesis(g.vote_data()),
        payload: vec![[9; 32]],
        exec_height: 0,
        exec_root: [0; 32],
        reconfig: None,
        sig: Signature([0; 64]),
    };
    b.sig = TestSigner::for_node(1).sign(&b.id());
    b
}

#[test]
fn vote_leaves_only_after_persisted_ok() {
    let mut c = core(2);
    let start = c.start();
    assert_eq!(start, vec![Action::SetTimer { round: 1, duration_ms: 1000 }]);
    let bytes = Message::Proposal(Proposal { block: proposal_r1(), tc: None }).encode();
    let acts = c.handle(Event::Message { from: 1, bytes });
    let [Action::Persist { seq, bytes: data }] = acts.as_slice() else { panic!("{acts:?}") };
    let persisted = crate::safety::SafetyData::from_bytes_checked(data);
    assert_eq!(persisted.last_voted_round, 1);
    let acts = c.handle(Event::PersistedOk { seq: *seq });
    // Round 2's leader is validator 2 = us: the vote loops back instead of being sent.
    assert!(acts.iter().all(|a| !matches!(a, Action::Send { .. })), "{acts:?}");
    let mut c3 = core(3);
    c3.start();
    let bytes = Message::Proposal(Proposal { block: proposal_r1(), tc: None }).encode();
    let acts = c3.handle(Event::Message { from: 1, bytes });
    assert!(matches!(acts.as_slice(), [Action::Persist { .. }]));
    let acts = c3.handle(Event::PersistedOk { seq: 1 });
    assert!(matches!(acts.as_slice(), [Action::Send { to: 2, .. }]), "{acts:?}");
}

/// A timeout signed and held for its record is not re-sent by a later timer either, until
/// the host acknowledges the record (a host may persist off its event loop, so the timer
/// can fire while the write is under way).
#[test]
fn a_timeout_is_not_resent_before_its_record_is_persisted() {
    let mut c = core(3);
    c.start();
    let acts = c.handle(Event::LocalTimeout { round: 1 });
    let Some(seq) = acts.iter().find_map(|a| if let Action::Persist { seq, .. } = a { Some(*seq) } else { None }) else { panic!("{acts:?}") };
    assert!(!acts.iter().any(|a| matches!(a, Action::Broadcast { .. })), "{acts:?}");
    let again = c.handle(Event::LocalTimeout { round: 1 });
    assert!(!again.iter().any(|a| matches!(a, Action::Broadcast { .. })), "re-sent before persisted: {again:?}");
    let released = c.handle(Event::PersistedOk { seq });
    assert!(released.iter().any(|a| matches!(a, Action::Broadcast { .. })), "{released:?}");
    let third = c.handle(Event::LocalTimeout { round: 1 });
    assert!(third.iter().any(|a| matches!(a, Action::Broadcast { .. })), "persisted, so re-sent: {third:?}");
}

#[test]
fn garbage_is_reported_invalid() {
    let mut c = core(0);
    let acts = c.handle(Event::Message { from: 3, bytes: vec![1, 6, 0xff, 0xff, 0xff, 0xff] });
    assert_eq!(acts, vec![Action::Invalid { from: 3, reason: "sync blocks: length 4294967295 exceeds cap 64".into() }]);
    let mut b = proposal_r1();
    b.proposer = 3;
    let acts = c.handle(Event::Message { from: 3, bytes: Message::Proposal(Proposal { block: b, tc: None }).encode() });
    assert_eq!(acts, vec![Action::Invalid { from: 3, reason: "proposal for round 1 by validator 3, but the leader is 1".into() }]);
}

#[test]
fn double_vote_is_evidence() {
    let mut c = core(2); // leader of round 2 collects round-1 votes
    c.start();
    let b = proposal_r1();
    let mut b2 = b.clone();
    b2.payload.clear();
    for blk in [&b, &b2] {
        let d = blk.vote_data();
        let v = Vote { data: d, author: 3, sig: TestSigner::for_node(3).sign(&d.digest()) };
        let acts = c.handle(Event::Message { from: 3, bytes: Message::Vote(v).encode() });
        if blk == &b2 {
            let [Action::ReportEvidence { offender: 3, bytes }] = acts.as_slice() else { panic!("{acts:?}") };
            assert!(matches!(crate::message::Evidence::decode(bytes).unwrap(), crate::message::Evidence::DoubleVote(..)));
        }
    }
}

#[test]
fn epoch_change_at_a_committed_block() {
    let mut c = SimConfig::new(4, 11);
    c.reconfig_at = Some(5);
    c.target_height = 30;
    let r = simulate(c);
    assert_eq!(r.safety_violations, 0);
    assert_eq!(r.epoch, 1, "{r:?}");
    assert_eq!(r.invalid, 0, "{r:?}");
    // The new epoch reuses round numbers after the end block: no false equivocation.
    assert_eq!(r.evidence, 0, "{r:?}");
    assert!(!r.liveness_failure, "{r:?}");
}

#[test]
fn epoch_change_that_removes_a_validator_over_many_seeds() {
    // Removing validator 3 at various heights: every run switches to epoch 1 and goes on.
    // (The case where 3 alone formed the QC that commits the epoch's end, fixed by the
    // broadcast in `switch_epoch`, showed on real processes: tests/test_node_cluster_validators.py.)
    for seed in 0..60 {
        let mut c = SimConfig::new(4, 1000 + seed);
        c.reconfig_at = Some(3 + seed % 5);
        c.target_height = 25;
        let r = simulate(c);
        assert_eq!(r.safety_violations, 0, "seed {seed}: {r:?}");
        assert!(!r.liveness_failure, "seed {seed}: {r:?}");
        assert_eq!(r.epoch, 1, "seed {seed}: {r:?}");
    }
}

#[test]
fn far_behind_node_catches_up_by_sync() {
    let mut c = SimConfig::new(4, 12);
    // Node 3 is down while ~150 blocks commit (more than one sync response carries).
    c.crashes = vec![(3, 5, 2_500)];
    c.target_height = 200;
    let r = simulate(c);
    assert_eq!(r.safety_violations, 0);
    assert!(!r.liveness_failure, "{r:?}");
    assert!(r.commits_by_instance[3] >= 200, "{r:?}");
}
