//! Safety rules, one rule per test, on small hand-built chains.
use crate::block::Block;
use crate::crypto::insecure_test::TestSigner;
use crate::crypto::{Signature, Signer};
use crate::error::ConsensusError;
use crate::safety::{Faults, SafetyRules};
use crate::types::*;

fn rules() -> SafetyRules {
    SafetyRules::new(0, Box::new(TestSigner::for_node(0)), None).unwrap()
}

fn qc_for(b: &Block) -> QuorumCert {
    let d = b.vote_data();
    QuorumCert { data: d, sigs: (0..3).map(|i| (i, TestSigner::for_node(i).sign(&d.digest()))).collect() }
}

fn block(parent: &Block, round: Round) -> Block {
    let qc = if parent.round == 0 { QuorumCert::genesis(parent.vote_data()) } else { qc_for(parent) };
    Block {
        epoch: 0,
        round,
        height: parent.height + 1,
        proposer: (round % 4) as u32,
        timestamp_ms: round,
        parent_qc: qc,
        payload: vec![[round as u8; 32]],
        exec_height: 0,
        exec_root: [0; 32],
        reconfig: None,
        sig: Signature([0; 64]),
    }
}

fn tc(round: Round, hqc: &QuorumCert) -> TimeoutCert {
    TimeoutCert {
        epoch: 0,
        round,
        high_qc: hqc.clone(),
        sigs: (0..3).map(|i| (i, hqc.round(), TestSigner::for_node(i).sign(&timeout_digest(0, round, hqc.round())))).collect(),
    }
}

#[test]
fn votes_once_per_round_and_repeats_the_same_vote() {
    let g = Block::genesis(0, [0; 32]);
    let (b1, mut other) = (block(&g, 1), block(&g, 1));
    other.payload.clear();
    let mut s = rules();
    let v = s.vote(&b1, None).unwrap();
    // The same block again (a restart re-delivers it): the same vote, no new signature.
    assert_eq!(s.vote(&b1, None).unwrap(), v);
    let e = s.vote(&other, None).unwrap_err();
    assert_eq!(e.to_string(), "round 1 is not above the last voted round 1");
}

#[test]
fn restart_from_persisted_data_keeps_the_vote() {
    let g = Block::genesis(0, [0; 32]);
    let (b1, mut other) = (block(&g, 1), block(&g, 1));
    other.timestamp_ms = 99;
    let mut s = rules();
    s.vote(&b1, None).unwrap();
    s.set_recovery_chain(vec![b1.clone()]);
    let bytes = s.persisted_bytes();
    let d = crate::safety::SafetyData::from_bytes_checked(&bytes);
    assert_eq!((d.last_voted_round, d.chain.len(), d.high_qc.as_ref().map(|q| q.round())), (1, 1, Some(0)));
    let mut restarted = SafetyRules::new(0, Box::new(TestSigner::for_node(0)), Some(&bytes)).unwrap();
    assert!(matches!(restarted.vote(&other, None), Err(ConsensusError::AlreadyVoted { round: 1, last_voted: 1 })));
}

/// ```text
///   genesis --- b1(r1) --- b2(r2)          TC(r3) reports high QC = QC(b2)
///         \---------------------- b4(r4)   extends QC(b1): below the lock, refused
///                       \-------- b4'(r4)  extends QC(b2): safe
/// ```
#[test]
fn lock_after_timeout_certificate() {
    let g = Block::genesis(0, [0; 32]);
    let b1 = block(&g, 1);
    let b2 = block(&b1, 2);
    let tc3 = tc(3, &qc_for(&b2));
    let bad = block(&b1, 4);
    let good = block(&b2, 4);
    let mut s = rules();
    let e = s.vote(&bad, Some(&tc3)).unwrap_err();
    assert_eq!(e.to_string(), "unsafe to vote in round 4: QC round 1, TC round Some(3) with high QC round Some(2)");
    // A gap without a TC is refused too.
    assert!(s.vote(&good, None).is_err());
    s.vote(&good, Some(&tc3)).unwrap();
    // The planted bug accepts the fork.
    let mut buggy = rules();
    buggy.faults = Faults { bits: Faults::SKIP_LOCK_CHECK };
    buggy.vote(&bad, Some(&tc3)).unwrap();
}

#[test]
fn no_vote_after_timing_out_in_the_round() {
    let g = Block::genesis(0, [0; 32]);
    let b1 = block(&g, 1);
    let mut s = rules();
    s.timeout(0, 1, &b1.parent_qc, None).unwrap();
    assert!(matches!(s.vote(&b1, None), Err(ConsensusError::AlreadyVoted { round: 1, .. })));
    // Timing out twice in one round is fine (re-broadcast); an older round is not.
    s.timeout(0, 1, &b1.parent_qc, None).unwrap();
    let b2 = block(&b1, 2);
    s.vote(&b2, None).unwrap();
    assert!(s.timeout(0, 1, &b1.parent_qc, None).is_err());
}

#[test]
fn timeout_requires_entering_the_round_and_the_lock() {
    let g = Block::genesis(0, [0; 32]);
    let b1 = block(&g, 1);
    let b2 = block(&b1, 2);
    let mut s = rules();
    // Round 5 was entered by neither a QC of round 4 nor a TC of round 4.
    assert!(matches!(s.timeout(0, 5, &qc_for(&b1), None), Err(ConsensusError::UnsafeToTimeout { round: 5, qc_round: 1, tc_round: None })));
    s.observe_qc(&qc_for(&b2));
    // Reporting a QC below the lock would hide QC(b2) from the next TC.
    assert!(s.timeout(0, 2, &qc_for(&b1), None).is_err());
    s.timeout(0, 3, &qc_for(&b2), None).unwrap();
}

#[test]
fn round_overflow_is_an_error_not_a_wrap() {
    let g = Block::genesis(0, [0; 32]);
    let mut b = block(&g, 1);
    b.parent_qc.data.round = u64::MAX;
    assert!(matches!(rules().vote(&b, None), Err(ConsensusError::RoundOverflow(u64::MAX))));
}

#[test]
fn one_proposal_per_round() {
    let g = Block::genesis(0, [0; 32]);
    let mut b = block(&g, 4);
    b.proposer = 0;
    let mut s = rules();
    s.sign_proposal(&b).unwrap();
    b.payload.clear();
    assert!(s.sign_proposal(&b).is_err());
}

#[test]
fn a_floor_forbids_every_round_up_to_it_and_keeps_its_lock() {
    use crate::codec::{Decode, Encode};
    use crate::safety::SafetyData;
    // genesis---b1--b2--b3--b4--b5: a validator restarted from a floor at round 3.
    let g = Block::genesis(0, [0; 32]);
    let b1 = block(&g, 1);
    let b2 = block(&b1, 2);
    let b3 = block(&b2, 3);
    let b4 = block(&b3, 4);
    let floor = SafetyData::floor(0, 3).to_bytes();
    let mut s = SafetyRules::new(0, Box::new(TestSigner::for_node(0)), Some(&floor)).unwrap();
    for b in [&b1, &b2, &b3] {
        assert!(matches!(s.vote(b, None), Err(ConsensusError::AlreadyVoted { .. })), "voted in round {}", b.round);
    }
    // An old QC seen after the restart does not lower the floor's lock.
    s.observe_qc(&qc_for(&b1));
    assert_eq!(s.data().one_chain_round, 3);
    assert!(s.vote(&b4, None).is_ok(), "round 4 extends the QC of round 3");
    assert_eq!(SafetyData::from_bytes(&s.persisted_bytes()).unwrap().last_voted_round, 4);
}
