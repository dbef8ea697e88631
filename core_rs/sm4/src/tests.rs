use proptest::prelude::*;

use crate::block::{expand_key, SBOX};
use crate::ghash;
use crate::{encrypt_block, Backend, Error, Sm4Gcm};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

fn arr16(s: &str) -> [u8; 16] {
    h(s).try_into().expect("16 bytes")
}

#[test]
fn sbox_matches_the_printed_table() {
    // GB/T 32907-2016 table 1, first and last rows.
    assert_eq!(SBOX[..16], h("d690e9fecce13db716b614c228fb2c05")[..]);
    assert_eq!(SBOX[240..], h("18f07dec3adc4d2079ee5f3ed7cb3948")[..]);
    let mut seen = [false; 256];
    for &s in SBOX.iter() {
        seen[s as usize] = true;
    }
    assert!(seen.iter().all(|&b| b), "the S-box is a permutation");
}

#[test]
fn gbt_32907_example_1() {
    let k = arr16("0123456789abcdeffedcba9876543210");
    assert_eq!(encrypt_block(&k, &k), arr16("681edf34d206965e86b3e94f536e4246"));
}

#[test]
fn gbt_32907_example_2_one_million_encryptions() {
    let k = arr16("0123456789abcdeffedcba9876543210");
    let rk = expand_key(&k);
    let mut b = k;
    for _ in 0..1_000_000 {
        b = crate::block::encrypt_block(&rk, &b);
    }
    assert_eq!(b, arr16("595298c7c6fd271f0402f804c33d3f66"));
}

const RFC8998_KEY: &str = "0123456789abcdeffedcba9876543210";
const RFC8998_IV: &str = "00001234567800000000abcd";
const RFC8998_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const RFC8998_PT: &str = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd\
                          eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa";
const RFC8998_CT: &str = "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735\
                          d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d";
const RFC8998_TAG: &str = "83de3541e4c2b58177e065a9bf7b62ec";

#[test]
fn rfc8998_gcm_vector_on_every_backend() {
    let key = arr16(RFC8998_KEY);
    let pt = h(&RFC8998_PT.replace(' ', ""));
    let mut expected = h(&RFC8998_CT.replace(' ', ""));
    expected.extend(h(RFC8998_TAG));
    for b in Backend::available() {
        let g = Sm4Gcm::with_backend(&key, b);
        let out = g.encrypt(&h(RFC8998_IV), &h(RFC8998_AAD), &pt).expect("encrypt");
        assert_eq!(hex::encode(&out), hex::encode(&expected), "{b:?}");
        assert_eq!(g.decrypt(&h(RFC8998_IV), &h(RFC8998_AAD), &out).expect("decrypt"), pt, "{b:?}");
    }
}

/// GHASH by the book (SP 800-38D, Algorithm 1): bit-serial, bit 0 is the MSB of byte 0.
fn gf128_mul_reference(x: u128, y: u128) -> u128 {
    const R: u128 = 0xe1 << 120;
    let mut z = 0u128;
    let mut v = y;
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ R } else { v >> 1 };
    }
    z
}

fn ghash_reference(hkey: &[u8; 16], data: &[u8]) -> [u8; 16] {
    let hv = u128::from_be_bytes(*hkey);
    let mut y = 0u128;
    for b in data.chunks(16) {
        let mut blk = [0u8; 16];
        blk[..b.len()].copy_from_slice(b);
        y = gf128_mul_reference(y ^ u128::from_be_bytes(blk), hv);
    }
    y.to_be_bytes()
}

fn ghash_with(hkey: &[u8; 16], data: &[u8], clmul: bool) -> [u8; 16] {
    let key = ghash::Key::new(hkey);
    let mut g = ghash::Ghash::new(&key, clmul);
    g.update_padded(data);
    // `finish` adds a (zero) length block; the reference hashes one too.
    g.finish(0, 0)
}

fn ghash_reference_with_len_block(hkey: &[u8; 16], data: &[u8]) -> [u8; 16] {
    let mut padded = data.to_vec();
    padded.resize(data.len().div_ceil(16) * 16, 0);
    padded.extend([0u8; 16]);
    ghash_reference(hkey, &padded)
}

fn clmul64_reference(x: u64, y: u64) -> u128 {
    (0..64).filter(|i| (y >> i) & 1 == 1).fold(0u128, |acc, i| acc ^ ((x as u128) << i))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn soft_clmul_matches_the_shift_and_add_definition(x: u64, y: u64) {
        prop_assert_eq!(ghash::clmul64_soft(x, y), clmul64_reference(x, y));
    }

    #[test]
    fn ghash_backends_match_the_bitwise_definition(hkey: [u8; 16], data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let want = ghash_reference_with_len_block(&hkey, &data);
        prop_assert_eq!(ghash_with(&hkey, &data, false), want);
        if Backend::available().contains(&Backend::Clmul) {
            prop_assert_eq!(ghash_with(&hkey, &data, true), want);
        }
    }

    #[test]
    fn backends_agree_and_round_trip(key: [u8; 16], nonce: [u8; 12], aad in proptest::collection::vec(any::<u8>(), 0..70),
                                     pt in proptest::collection::vec(any::<u8>(), 0..700)) {
        let mut first: Option<Vec<u8>> = None;
        for b in Backend::available() {
            let g = Sm4Gcm::with_backend(&key, b);
            let ct = g.encrypt(&nonce, &aad, &pt).unwrap();
            prop_assert_eq!(ct.len(), pt.len() + 16);
            prop_assert_eq!(&g.decrypt(&nonce, &aad, &ct).unwrap(), &pt);
            match &first {
                None => first = Some(ct),
                Some(f) => prop_assert_eq!(f, &ct, "{:?}", b),
            }
        }
    }

    #[test]
    fn any_flipped_bit_fails_authentication(key: [u8; 16], nonce: [u8; 12], pt in proptest::collection::vec(any::<u8>(), 0..100), bit: usize) {
        let g = Sm4Gcm::new(&key);
        let mut ct = g.encrypt(&nonce, b"hdr", &pt).unwrap();
        let bit = bit % (ct.len() * 8);
        ct[bit / 8] ^= 1 << (bit % 8);
        let mut out = vec![0xaa; pt.len()];
        prop_assert_eq!(g.decrypt_into(&nonce, b"hdr", &ct, &mut out), Err(Error::Authentication));
        prop_assert!(out.iter().all(|&b| b == 0), "no plaintext is released on failure");
    }
}

/// Messages crossing the 4 KiB slices and the 8-block batches, checked against a plain
/// one-block-at-a-time CTR + reference GHASH built here from the block cipher alone.
#[test]
fn long_messages_match_a_block_at_a_time_model() {
    let key = arr16("000102030405060708090a0b0c0d0e0f");
    let rk = expand_key(&key);
    let nonce = h("cafebabefacedbaddecaf888");
    let aad: Vec<u8> = (0..37u8).collect();
    // 300..511 and 4096 + 900 leave several whole 8-block groups after the 32-block batches.
    for len in [0usize, 1, 15, 16, 17, 127, 128, 129, 300, 400, 511, 4095, 4096, 4097, 4096 + 900, 8192 + 200, 20000] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let mut ct = pt.clone();
        for (i, blk) in ct.chunks_mut(16).enumerate() {
            let mut c = [0u8; 16];
            c[..12].copy_from_slice(&nonce);
            c[12..].copy_from_slice(&(i as u32 + 2).to_be_bytes());
            let ks = crate::block::encrypt_block(&rk, &c);
            for (d, k) in blk.iter_mut().zip(ks) {
                *d ^= k;
            }
        }
        let hkey = crate::block::encrypt_block(&rk, &[0u8; 16]);
        let mut ghash_in = aad.clone();
        ghash_in.resize(aad.len().div_ceil(16) * 16, 0);
        ghash_in.extend(&ct);
        ghash_in.resize(ghash_in.len().div_ceil(16) * 16, 0);
        ghash_in.extend(((aad.len() * 8) as u64).to_be_bytes());
        ghash_in.extend(((len * 8) as u64).to_be_bytes());
        let mut tag = ghash_reference(&hkey, &ghash_in);
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(&nonce);
        j0[15] = 1;
        for (t, m) in tag.iter_mut().zip(crate::block::encrypt_block(&rk, &j0)) {
            *t ^= m;
        }
        ct.extend(tag);
        for b in Backend::available() {
            let g = Sm4Gcm::with_backend(&key, b);
            assert_eq!(g.encrypt(&nonce, &aad, &pt).unwrap(), ct, "len {len} {b:?}");
            assert_eq!(g.decrypt(&nonce, &aad, &ct).unwrap(), pt, "len {len} {b:?}");
        }
    }
}

#[test]
fn errors_name_the_bad_length() {
    let g = Sm4Gcm::new(&[7u8; 16]);
    assert_eq!(Sm4Gcm::from_slice(&[0u8; 15]).err(), Some(Error::KeyLength(15)));
    assert_eq!(g.encrypt(&[0u8; 8], b"", b"x"), Err(Error::NonceLength(8)));
    assert_eq!(g.decrypt(&[0u8; 13], b"", &[0u8; 40]), Err(Error::NonceLength(13)));
    assert_eq!(g.decrypt(&[0u8; 12], b"", b"short"), Err(Error::TooShort(5)));
    let mut small = [0u8; 4];
    assert_eq!(g.encrypt_into(&[0u8; 12], b"", b"abcd", &mut small), Err(Error::OutputLength { got: 4, expected: 20 }));
    assert!(Error::Authentication.to_string().contains("authentication failed"));
}

#[test]
fn wrong_nonce_or_aad_fails() {
    let g = Sm4Gcm::new(&[1u8; 16]);
    let ct = g.encrypt(&[2u8; 12], b"aad", b"payload").unwrap();
    assert_eq!(g.decrypt(&[3u8; 12], b"aad", &ct), Err(Error::Authentication));
    assert_eq!(g.decrypt(&[2u8; 12], b"aae", &ct), Err(Error::Authentication));
    assert_eq!(Sm4Gcm::new(&[9u8; 16]).decrypt(&[2u8; 12], b"aad", &ct), Err(Error::Authentication));
    assert_eq!(g.decrypt(&[2u8; 12], b"aad", &ct).unwrap(), b"payload");
}

#[test]
fn sm4_sbox_through_the_aes_sbox_for_all_inputs() {
    for x in 0..=255u8 {
        let via_aes = crate::aes_map::post(crate::aes_map::aes_sbox(crate::aes_map::pre(x)));
        assert_eq!(via_aes, SBOX[x as usize], "input {x:#04x}");
        // The nibble tables give the same affine maps.
        let nib = |t: &[[u8; 16]; 2], v: u8| t[0][(v & 15) as usize] ^ t[1][(v >> 4) as usize];
        assert_eq!(nib(&crate::aes_map::PRE_TABLES, x), crate::aes_map::pre(x));
        assert_eq!(nib(&crate::aes_map::POST_TABLES, x), crate::aes_map::post(x));
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn aesenclast_round_function_matches_the_tables_for_all_bytes() {
    if !Backend::available().contains(&Backend::AesNi) {
        eprintln!("skipped: no AES-NI on this CPU");
        return;
    }
    // Every byte value in every byte position of every lane, against T = L∘τ by tables.
    for x in 0..=255u32 {
        let words = [x * 0x0101_0101, x, x << 8, (x << 24) | 0x00c3_5a00];
        // SAFETY: AES-NI (and SSSE3, which `cpu.rs` requires with it) checked above.
        let got = unsafe { crate::sm4_simd::round_t_x4(words) };
        for (g, w) in got.iter().zip(words) {
            assert_eq!(*g, crate::block::l_enc(crate::block::tau_pub(w)), "word {w:#010x}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn key_schedule_through_aesenclast_matches_the_tables() {
    if !Backend::available().contains(&Backend::AesNi) {
        eprintln!("skipped: no AES-NI on this CPU");
        return;
    }
    let mut key = [0u8; 16];
    for i in 0..64u8 {
        for (j, b) in key.iter_mut().enumerate() {
            *b = i.wrapping_mul(37).wrapping_add((j as u8).wrapping_mul(101)) ^ (i >> 3);
        }
        // SAFETY: AES-NI (and SSSE3, which `cpu.rs` requires with it) checked above.
        assert_eq!(unsafe { crate::sm4_simd::expand_key_aesni(&key) }, expand_key(&key), "key {}", hex::encode(key));
    }
}
