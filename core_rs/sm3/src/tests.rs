use super::*;
use proptest::prelude::*;

fn hx(d: &[u8]) -> String {
    hex::encode(d)
}

#[test]
fn gbt_32905_example_1_abc() {
    assert_eq!(hx(&hash(b"abc")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
}

#[test]
fn gbt_32905_example_2_abcd_x16() {
    assert_eq!(hx(&hash(&b"abcd".repeat(16))), "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732");
}

#[test]
fn gbt_vectors_on_every_path() {
    let abc: &[u8] = b"abc";
    let abcd16 = b"abcd".repeat(16);
    for b in Backend::available() {
        let mut out = [[0u8; 32]; 2];
        b.hash_many_into(&[abc, &abcd16], &mut out);
        assert_eq!(out[0], hash(abc), "{b:?}");
        assert_eq!(out[1], hash(&abcd16), "{b:?}");
    }
    let mut st = IV;
    let mut st2 = IV;
    let block = [0x61u8; 128];
    compress(&mut st, &block);
    compress_no_simd(&mut st2, &block);
    assert_eq!(st, st2);
}

/// RFC 2104 written out independently of `hmac`, on top of `hash`.
fn hmac_by_formula(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = if key.len() > 64 { hash(key).to_vec() } else { key.to_vec() };
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(data.iter().copied()).collect();
    let inner = hash(&ipad);
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner.iter().copied()).collect();
    hash(&opad)
}

#[test]
fn hmac_gmt_0042_2015_appendix_d3() {
    // Count 1: 32-byte key, 112-byte message.
    let key: Vec<u8> = (1..=32).collect();
    let msg = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopqabcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(hx(&hmac(&key, msg)), "ca05e144ed05d1857840d1f318a4a8669e559fc8391f414485bfdf7bb408963a");
    // Count 2: 37-byte key, 50 x 0xcd.
    let key: Vec<u8> = (1..=37).collect();
    assert_eq!(hx(&hmac(&key, &[0xcd; 50])), "220bf579ded555393f0159f66c99877822a3ecf610d1552154b41d44b94db3ae");
}

#[test]
fn hmac_long_key_is_hashed_first() {
    let key = [0x5au8; 100];
    assert_eq!(hmac(&key, b"data"), hmac(&hash(&key), b"data"));
    assert_eq!(hmac(&key, b"data"), hmac_by_formula(&key, b"data"));
}

#[test]
fn kdf_shape() {
    let z = b"shared secret x2||y2";
    assert!(kdf(z, 0).is_empty());
    // First block is Hash(z || 00000001), the second Hash(z || 00000002).
    let mut z1 = z.to_vec();
    z1.extend_from_slice(&1u32.to_be_bytes());
    let mut z2 = z.to_vec();
    z2.extend_from_slice(&2u32.to_be_bytes());
    let k = kdf(z, 40);
    assert_eq!(&k[..32], &hash(&z1));
    assert_eq!(&k[32..], &hash(&z2)[..8]);
}

fn msgs_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn streaming_in_chunks_equals_one_shot(data in prop::collection::vec(any::<u8>(), 0..1000),
                                           cuts in prop::collection::vec(0usize..1000, 0..8)) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort();
        let mut h = Sm3::new();
        let mut last = 0;
        for c in cuts {
            h.update(&data[last..c]);
            last = c;
        }
        h.update(&data[last..]);
        prop_assert_eq!(h.finalize(), hash(&data));
        prop_assert_eq!(hash(&data), multibuf::reference(&[], &data));
    }

    #[test]
    fn multibuffer_equals_scalar(msgs in msgs_strategy(), prefix in prop::collection::vec(any::<u8>(), 0..3)) {
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let want: Vec<[u8; 32]> = refs.iter().map(|m| hash(m)).collect();
        let want_pre: Vec<[u8; 32]> = refs.iter().map(|m| multibuf::reference(&prefix, m)).collect();
        prop_assert_eq!(&hash_many(&refs), &want);
        for b in Backend::available() {
            let mut out = vec![[0u8; 32]; refs.len()];
            b.hash_many_into(&refs, &mut out);
            prop_assert_eq!(&out, &want, "{:?}", b);
            b.hash_many_prefixed_into(&prefix, &refs, &mut out);
            prop_assert_eq!(&out, &want_pre, "{:?} prefixed", b);
        }
    }

    #[test]
    fn pairs_equal_scalar(nodes in prop::collection::vec(any::<[u8; 32]>(), 0..70)) {
        let n = nodes.len() / 2 * 2;
        let nodes = &nodes[..n];
        let want: Vec<[u8; 32]> = nodes
            .chunks(2)
            .map(|p| multibuf::reference(&[1], &[p[0], p[1]].concat()))
            .collect();
        for b in Backend::available() {
            let mut out = vec![[0u8; 32]; n / 2];
            b.hash_pairs_prefixed_into(&[1], nodes, &mut out);
            prop_assert_eq!(&out, &want, "{:?}", b);
            // A prefix too long for the two-block path takes the general one.
            let long_prefix = [5u8; 60];
            b.hash_pairs_prefixed_into(&long_prefix, nodes, &mut out);
            for (p, d) in nodes.chunks(2).zip(&out) {
                prop_assert_eq!(*d, multibuf::reference(&long_prefix, &[p[0], p[1]].concat()));
            }
        }
    }

    #[test]
    fn every_one_stream_compression_agrees(data in prop::collection::vec(any::<u8>(), 0..640),
                                           iv in any::<[u32; 8]>()) {
        let blocks = &data[..data.len() / 64 * 64];
        let mut want = iv;
        compress_no_simd(&mut want, blocks);
        let mut got = iv;
        compress(&mut got, blocks);
        prop_assert_eq!(got, want);
        #[cfg(target_arch = "x86_64")]
        {
            let mut got = iv;
            if scalar::compress_bmi2_only(&mut got, blocks) {
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn hmac_matches_rfc2104_formula(key in prop::collection::vec(any::<u8>(), 0..150),
                                   data in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(hmac(&key, &data), hmac_by_formula(&key, &data));
    }

    #[test]
    fn kdf_shorter_is_prefix_of_longer(z in prop::collection::vec(any::<u8>(), 0..100), n in 0usize..200, m in 0usize..200) {
        let (n, m) = (n.min(m), n.max(m));
        let long = kdf(&z, m);
        prop_assert_eq!(long.len(), m);
        prop_assert_eq!(&kdf(&z, n)[..], &long[..n]);
    }
}

#[test]
fn lengths_around_block_boundaries_every_backend() {
    // Padding takes one or two blocks depending on len % 64; cover every case
    // with and without a one-byte prefix, mixed in one batch.
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    let refs: Vec<&[u8]> = (0..=200).map(|n| &data[..n]).collect();
    for b in Backend::available() {
        for prefix in [&[][..], &[0u8][..], &[9u8; 64][..]] {
            let mut out = vec![[0u8; 32]; refs.len()];
            b.hash_many_prefixed_into(prefix, &refs, &mut out);
            for (m, d) in refs.iter().zip(&out) {
                assert_eq!(*d, multibuf::reference(prefix, m), "{b:?} len {}", m.len());
            }
        }
    }
}

#[test]
fn equal_length_batches_every_backend() {
    // The fixed-length path (all messages one length, at most two blocks) and
    // its broadcast padding block (length a multiple of 64), for group sizes
    // that leave remainders on both the 8- and the 16-lane engines.
    let data: Vec<u8> = (0..40 * 128u32).map(|i| (i * 31 + 7) as u8).collect();
    for b in Backend::available() {
        for prefix in [&[][..], &[0u8][..], &[1u8, 2, 3][..]] {
            for len in [0usize, 1, 31, 32, 55, 56, 60, 61, 63, 64, 65, 100, 116, 119, 120, 128] {
                for n in [1usize, 3, 8, 17, 37] {
                    let msgs: Vec<&[u8]> = (0..n).map(|i| &data[i * 128..i * 128 + len]).collect();
                    let mut out = vec![[0u8; 32]; n];
                    b.hash_many_prefixed_into(prefix, &msgs, &mut out);
                    for (m, d) in msgs.iter().zip(&out) {
                        assert_eq!(*d, multibuf::reference(prefix, m), "{b:?} prefix {prefix:?} len {len} n {n}");
                    }
                }
            }
        }
    }
}

#[test]
fn tagged_hash_is_length_prefixed_tag_then_parts() {
    let mut pre = 5u32.to_be_bytes().to_vec();
    pre.extend_from_slice(b"tfnod");
    pre.extend_from_slice(b"e/x");
    assert_eq!(crate::tagged_hash(b"tfnod", &[b"e", b"/x"]), crate::hash(&pre));
    // The length prefix separates tag from body: moving a byte across changes the digest.
    assert_ne!(crate::tagged_hash(b"tfnod", &[b"e/x"]), crate::tagged_hash(b"tfnode", &[b"/x"]));
}
