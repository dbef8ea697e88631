//! Peer and stored numbers at the edge of their range (round, epoch, height u64::MAX):
//! each message is ignored or refused with an error, never a panic or a silent wrap.
//! The test profile has overflow checks on, so a missed `+ 1` fails here as a panic.
use std::sync::Arc;

use crate::block::{Block, Proposal};
use crate::codec::Encode;
use crate::core::{Config, Core};
use crate::crypto::insecure_test::{TestSigner, TestVerifier};
use crate::crypto::{Signature, Signer};
use crate::error::ConsensusError;
use crate::event::{Action, Event};
use crate::message::{Message, SyncResponse};
use crate::pacemaker::Pacemaker;
use crate::safety::SafetyData;
use crate::tree::BlockTree;
use crate::types::*;

const MAX: u64 = u64::MAX;

fn vset(epoch: Epoch) -> ValidatorSet {
    ValidatorSet::new(epoch, (0..4).map(|i| Validator { id: i, power: 1, public_key: TestSigner::for_node(i).public_key() }).collect()).unwrap()
}

fn new_core(me: NodeId, root: Block, persisted: Option<&[u8]>) -> Result<Core, ConsensusError> {
    let qc = QuorumCert::genesis(root.vote_data());
    Core::new(Config::new(me), vset(root.epoch), root, qc, Box::new(TestSigner::for_node(me)), Arc::new(TestVerifier), persisted)
}

fn started(me: NodeId) -> Core {
    let mut c = new_core(me, Block::genesis(0, [0; 32]), None).unwrap();
    c.start();
    c
}

fn genesis_qc() -> QuorumCert {
    QuorumCert::genesis(Block::genesis(0, [0; 32]).vote_data())
}

/// A QC on `data` signed by validators 0..3 (the test signatures are forgeable, so any
/// round can carry a valid certificate: the worst case for the core).
fn signed_qc(data: VoteData) -> QuorumCert {
    QuorumCert { data, sigs: (0..3).map(|i| (i, TestSigner::for_node(i).sign(&data.digest()))).collect() }
}

fn signed_vote(author: NodeId, data: VoteData) -> Vote {
    Vote { data, author, sig: TestSigner::for_node(author).sign(&data.digest()) }
}

fn signed_timeout(author: NodeId, epoch: Epoch, round: Round, high_qc: QuorumCert) -> Timeout {
    let sig = TestSigner::for_node(author).sign(&timeout_digest(epoch, round, high_qc.round()));
    Timeout { epoch, round, high_qc, author, sig }
}

fn send(c: &mut Core, from: NodeId, m: Message) -> Vec<Action> {
    c.handle(Event::Message { from, bytes: m.encode() })
}

fn invalid(reason: &str) -> Vec<Action> {
    vec![Action::Invalid { from: 1, reason: reason.into() }]
}

const OVERFLOW_AT_MAX: &str = "round arithmetic overflow at round 18446744073709551615";

/// The input fuzzing found: a vote at round u64::MAX made `on_vote` compute `r + 1`.
#[test]
fn vote_at_round_max_is_ignored() {
    for me in 0..4 {
        let mut c = started(me);
        for (epoch, round) in [(0, MAX), (0, MAX - 1), (MAX, MAX), (MAX, 1)] {
            let v = signed_vote(1, VoteData { epoch, round, height: 1, block_id: [7; 32] });
            assert_eq!(send(&mut c, 1, Message::Vote(v)), vec![], "epoch {epoch} round {round}");
        }
        assert_eq!(c.round(), 1);
    }
}

/// The committed fuzz regression input decodes to that vote and is harmless now.
#[test]
fn fuzz_regression_vote_round_max() {
    let data = include_bytes!("../../../../fuzz/regressions/consensus_core/vote-round-u64-max");
    // Frame: [flags][len][message bytes], as the consensus_core fuzz target reads it.
    let len = data[1] as usize;
    assert_eq!(data.len(), 2 + len);
    let Ok(Message::Vote(v)) = Message::decode(&data[2..]) else { panic!("not a vote") };
    assert_eq!((v.data.epoch, v.data.round), (0, MAX));
    let mut c = started(0);
    assert_eq!(c.handle(Event::Message { from: 2, bytes: data[2..].to_vec() }), vec![]);
}

#[test]
fn timeout_far_ahead_is_ignored() {
    let mut c = started(0);
    for round in [MAX, MAX - 1, 1 + 65] {
        assert_eq!(send(&mut c, 1, Message::Timeout(signed_timeout(1, 0, round, genesis_qc()))), vec![], "round {round}");
    }
    // A later epoch asks for sync (peers moved on); epoch u64::MAX is no exception.
    let acts = send(&mut c, 1, Message::Timeout(signed_timeout(1, MAX, MAX, genesis_qc())));
    assert!(acts.iter().all(|a| matches!(a, Action::RequestSync { .. })), "{acts:?}");
    assert_eq!(c.round(), 1);
}

#[test]
fn tc_at_round_max_is_refused() {
    let mut c = started(0);
    let sigs = (0..3).map(|i| (i, 0, TestSigner::for_node(i).sign(&timeout_digest(0, MAX, 0)))).collect();
    let tc = TimeoutCert { epoch: 0, round: MAX, high_qc: genesis_qc(), sigs };
    assert_eq!(send(&mut c, 1, Message::Tc(tc)), invalid(OVERFLOW_AT_MAX));
    assert_eq!(c.round(), 1);
    assert!(c.last_tc.is_none(), "a TC with no next round is not kept");
}

/// A valid QC at round u64::MAX (only a byzantine quorum could sign one) is refused before
/// it becomes the lock or the high QC.
#[test]
fn qc_at_round_max_is_refused_before_it_is_kept() {
    let mut c = started(0);
    let qc = signed_qc(VoteData { epoch: 0, round: MAX, height: 9, block_id: [3; 32] });
    let acts = send(&mut c, 1, Message::Timeout(signed_timeout(1, 0, 1, qc)));
    assert_eq!(acts, invalid(OVERFLOW_AT_MAX));
    assert_eq!((c.round(), c.high_qc().round(), c.safety.data().one_chain_round), (1, 0, 0));
    // The node still times out normally in round 1.
    let acts = c.handle(Event::LocalTimeout { round: 1 });
    assert!(acts.iter().any(|a| matches!(a, Action::Persist { .. })), "{acts:?}");
}

fn block(round: Round, height: u64, proposer: NodeId) -> Block {
    let mut b = Block {
        epoch: 0,
        round,
        height,
        proposer,
        timestamp_ms: 5,
        parent_qc: genesis_qc(),
        payload: vec![],
        exec_height: 0,
        exec_root: [0; 32],
        reconfig: None,
        sig: Signature([0; 64]),
    };
    b.sig = TestSigner::for_node(proposer).sign(&b.id());
    b
}

#[test]
fn proposal_at_round_or_height_max_is_not_voted() {
    let mut c = started(0);
    let leader = c.leader(MAX);
    // Round u64::MAX: stored as a child of genesis, but never voted (not our round).
    let acts = send(&mut c, leader, Message::Proposal(Proposal { block: block(MAX, 1, leader), tc: None }));
    assert_eq!(acts, vec![]);
    // Height u64::MAX does not follow genesis.
    let acts = send(&mut c, 1, Message::Proposal(Proposal { block: block(1, MAX, 1), tc: None }));
    let reason = "invalid block at round 1: height, round, time or executed height does not follow the parent";
    assert_eq!(acts, invalid(reason));
    assert_eq!(c.round(), 1);
}

/// A chain that reaches round u64::MAX with valid certificates: the block of that round
/// is safe to vote for by the rules, but the vote would go to the leader of round
/// u64::MAX + 1, so none is signed.
///
/// ```text
///   genesis --- a(MAX-1) <- QC(a) --- b(MAX)
/// ```
#[test]
fn no_vote_in_round_max() {
    let mut c = started(2);
    let la = c.leader(MAX - 1);
    let a = block(MAX - 1, 1, la);
    assert_eq!(send(&mut c, la, Message::Proposal(Proposal { block: a.clone(), tc: None })), vec![]);
    let lb = c.leader(MAX);
    let mut b = block(MAX, 2, lb);
    b.parent_qc = signed_qc(a.vote_data());
    b.sig = TestSigner::for_node(lb).sign(&b.id());
    let acts = send(&mut c, lb, Message::Proposal(Proposal { block: b, tc: None }));
    assert_eq!(c.round(), MAX, "QC(a) moved us to round u64::MAX");
    assert!(acts.iter().all(|a| !matches!(a, Action::Persist { .. } | Action::Invalid { .. })), "{acts:?}");
    assert_eq!(c.safety.data().last_voted_round, 0);
}

#[test]
fn stored_state_without_a_next_round_is_refused() {
    let mut root = Block::genesis(0, [0; 32]);
    root.round = MAX;
    assert_eq!(new_core(0, root, None).err(), Some(ConsensusError::RoundOverflow(MAX)));

    let tc = TimeoutCert { epoch: 0, round: MAX, high_qc: genesis_qc(), sigs: vec![] };
    let persisted = SafetyData { high_tc: Some(tc), ..SafetyData::default() }.to_bytes();
    assert_eq!(new_core(0, Block::genesis(0, [0; 32]), Some(&persisted)).err(), Some(ConsensusError::RoundOverflow(MAX)));
}

#[test]
fn root_at_height_max_asks_for_no_payload() {
    let mut root = Block::genesis(0, [0; 32]);
    root.height = MAX;
    let leader = {
        let c = new_core(0, root.clone(), None).unwrap();
        c.leader(1)
    };
    let mut c = new_core(leader, root, None).unwrap();
    assert_eq!(c.start(), vec![Action::SetTimer { round: 1, duration_ms: 1000 }]);
    // A payload anyway (a host bug) builds nothing.
    let acts = c.handle(Event::Payload { round: 1, digests: vec![], timestamp_ms: 1, reconfig: None });
    assert_eq!(acts, vec![]);
}

#[test]
fn tree_refuses_a_child_of_height_max() {
    let mut root = Block::genesis(0, [0; 32]);
    root.height = MAX;
    let mut t = BlockTree::new(root.clone(), QuorumCert::genesis(root.vote_data()));
    let mut b = block(1, 0, 1);
    b.parent_qc = QuorumCert::genesis(root.vote_data());
    assert!(matches!(t.insert(b), Err(ConsensusError::InvalidBlock { round: 1, .. })));
}

#[test]
fn sync_at_epoch_max_does_not_wrap() {
    let mut c = new_core(0, Block::genesis(MAX, [0; 32]), None).unwrap();
    c.start();
    // Epoch u64::MAX + 1 would wrap to 0: a block of epoch 0 is not "the next epoch".
    let acts = send(&mut c, 1, Message::SyncResponse(SyncResponse { blocks: vec![block(1, 1, 1)], qcs: vec![] }));
    assert_eq!(acts, vec![]);
    assert_eq!(c.epoch(), MAX);
}

#[test]
fn backoff_exponent_beyond_64_saturates() {
    let mut pm = Pacemaker::new(1000, 200);
    for r in 1..=70 {
        pm.enter(r, true);
    }
    assert_eq!(pm.duration_ms(), u64::MAX);
    // Normal settings are unchanged: 1000 ms * 2^6 at most.
    let mut pm = Pacemaker::new(1000, 6);
    for r in 1..=10 {
        pm.enter(r, true);
    }
    assert_eq!(pm.duration_ms(), 64_000);
}
