//! Writes the hand-made seed inputs of the `consensus_core` fuzz target (the frame format
//! is documented in fuzz/fuzz_targets/consensus_core.rs): short protocol runs that a
//! random start would take the fuzzer a long time to find, so that mutations start from
//! certificates that verify, rounds that advance and blocks that commit.
//!
//!   cargo run -p tfnode-consensus --example fuzz_seeds -- fuzz/seeds/consensus_core
//!
//! Signatures are left zero: the target signs frames flagged 0x80 itself.
use std::path::PathBuf;

use tfnode_consensus::{Block, Message, Proposal, QuorumCert, Signature, SyncResponse, Timeout, TimeoutCert, Vote, VoteData};

const SIGN: u8 = 0x80;
const TIMER: u8 = 0x40;
const LONG: u8 = 0x20;
const ZERO: Signature = Signature([0; 64]);

/// One frame from validator `from` (1..=4).
fn frame(out: &mut Vec<u8>, flags: u8, from: u32, m: &Message) {
    let bytes = m.encode();
    let sender = (from - 1) as u8;
    if bytes.len() <= 255 {
        out.extend_from_slice(&[flags | sender, bytes.len() as u8]);
    } else {
        out.push(flags | LONG | sender);
        out.extend_from_slice(&u16::try_from(bytes.len()).expect("frame fits u16").to_be_bytes());
    }
    out.extend_from_slice(&bytes);
}

fn qc(data: VoteData) -> QuorumCert {
    QuorumCert { data, sigs: (1..=3).map(|a| (a, ZERO)).collect() }
}

fn block(round: u64, parent: &Block, parent_qc: QuorumCert) -> Block {
    Block {
        epoch: 0,
        round,
        height: parent.height + 1,
        proposer: (round % 4) as u32,
        timestamp_ms: round * 10,
        parent_qc,
        payload: vec![[round as u8; 32]],
        exec_height: 0,
        exec_root: [0; 32],
        reconfig: None,
        sig: ZERO,
    }
}

fn vote(author: u32, b: &Block) -> Message {
    Message::Vote(Vote { data: b.vote_data(), author, sig: ZERO })
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_seeds DIR"));
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    let g = Block::genesis(0, [0; 32]);
    let gqc = QuorumCert::genesis(g.vote_data());
    // genesis --- b1 --- b2 --- b3: round-robin leaders 1, 2, 3; we (0) lead round 4.
    let b1 = block(1, &g, gqc.clone());
    let b2 = block(2, &b1, qc(b1.vote_data()));
    let b3 = block(3, &b2, qc(b2.vote_data()));
    let prop = |b: &Block, tc: Option<TimeoutCert>| Message::Proposal(Proposal { block: b.clone(), tc });

    // Three certified rounds commit b1 and b2; the votes on b3 make us propose round 4.
    let mut happy = Vec::new();
    frame(&mut happy, SIGN, 1, &prop(&b1, None));
    frame(&mut happy, SIGN, 2, &prop(&b2, None));
    frame(&mut happy, SIGN, 3, &prop(&b3, None));
    for a in 1..=3 {
        frame(&mut happy, SIGN, a, &vote(a, &b3));
    }

    // Round 1 times out everywhere: a TC moves us to round 2, whose leader proposes with it.
    let timeout = |author: u32, round: u64, high_qc: &QuorumCert| Message::Timeout(Timeout { epoch: 0, round, high_qc: high_qc.clone(), author, sig: ZERO });
    let mut timeouts = Vec::new();
    for a in 1..=3 {
        frame(&mut timeouts, if a == 1 { SIGN | TIMER } else { SIGN }, a, &timeout(a, 1, &gqc));
    }
    let tc1 = TimeoutCert { epoch: 0, round: 1, high_qc: gqc.clone(), sigs: (1..=3).map(|a| (a, 0, ZERO)).collect() };
    let b2_after_tc = block(2, &g, gqc.clone());
    frame(&mut timeouts, SIGN, 2, &prop(&b2_after_tc, Some(tc1.clone())));
    frame(&mut timeouts, SIGN | TIMER, 3, &Message::Tc(tc1));

    // A node that fell behind: a sync answer with three blocks and the QC of the last.
    let mut sync = Vec::new();
    let resp = SyncResponse { blocks: vec![b1.clone(), b2.clone(), b3.clone()], qcs: vec![qc(b3.vote_data())] };
    frame(&mut sync, SIGN, 1, &Message::SyncResponse(resp));

    // Evidence: a second, different proposal for round 1 by its leader.
    let mut b1x = b1.clone();
    b1x.payload = vec![[0xee; 32]];
    let mut equivocation = Vec::new();
    frame(&mut equivocation, SIGN, 1, &prop(&b1, None));
    frame(&mut equivocation, SIGN, 1, &prop(&b1x, None));

    for (name, bytes) in [("happy-path", happy), ("timeouts-and-tc", timeouts), ("sync-three-blocks", sync), ("double-proposal", equivocation)] {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
}
