#![no_main]
//! A core fed arbitrary peer bytes: never panics, never signs (there is no valid
//! proposal in random bytes), whatever it answers is well formed.
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tfnode_consensus::crypto::insecure_test::{TestSigner, TestVerifier};
use tfnode_consensus::{Action, Block, Config, Core, Event, QuorumCert, Signer, Validator, ValidatorSet};

fuzz_target!(|data: &[u8]| {
    let vs = ValidatorSet::new(0, (0..4).map(|i| Validator { id: i, power: 1, public_key: TestSigner::for_node(i).public_key() }).collect()).unwrap();
    let g = Block::genesis(0, [0; 32]);
    let qc = QuorumCert::genesis(g.vote_data());
    let mut core = Core::new(Config::new(0), vs, g, qc, Box::new(TestSigner::for_node(0)), Arc::new(TestVerifier), None).unwrap();
    core.start();
    // Split the input into frames: [from: u8][len: u8][bytes].
    let mut rest = data;
    while rest.len() >= 2 {
        let (from, len) = (rest[0] as u32 % 5, rest[1] as usize);
        let end = (2 + len).min(rest.len());
        for a in core.handle(Event::Message { from, bytes: rest[2..end].to_vec() }) {
            assert!(!matches!(a, Action::Persist { .. }), "random bytes made the core sign");
        }
        rest = &rest[end..];
    }
});
