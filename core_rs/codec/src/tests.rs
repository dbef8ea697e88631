//! Byte layout, the checks on hostile lengths, and the error messages.
use crate::{CodecError, Reader, Writer};

#[test]
fn writes_big_endian_with_prefixes() {
    let mut w = Writer::new();
    w.u8(1);
    w.u16(0x0203);
    w.u32(0x0405_0607);
    w.u64(0x0809_0a0b_0c0d_0e0f);
    w.raw(&[0xaa]);
    w.bytes(b"xy");
    w.bytes16(b"z");
    w.seq_with(&[7u16, 8], |w, x| w.u16(*x));
    let want: &[u8] = &[
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xaa, //
        0, 0, 0, 2, b'x', b'y', 0, 1, b'z', 0, 0, 0, 2, 0, 7, 0, 8,
    ];
    assert_eq!(w.buf, want);
}

#[test]
fn reads_back_what_was_written() {
    let mut w = Writer::with_capacity(0);
    w.u8(1);
    w.u16(2);
    w.u32(3);
    w.u64(4);
    w.raw(&[5; 32]);
    w.bytes(b"abc");
    w.bytes16(b"de");
    w.seq_with(&[9u32, 10], |w, x| w.u32(*x));
    let mut r = Reader::new(&w.buf);
    assert_eq!(r.version("test", 1), Ok(()));
    assert_eq!(r.u16(), Ok(2));
    assert_eq!(r.u32(), Ok(3));
    assert_eq!(r.u64(), Ok(4));
    assert_eq!(r.array::<32>(), Ok([5; 32]));
    assert_eq!(r.bytes("b", 3), Ok(&b"abc"[..]));
    assert_eq!(r.bytes16("b16", 2), Ok(&b"de"[..]));
    assert_eq!(r.seq_with("s", 2, 4, |r| r.u32()), Ok(vec![9, 10]));
    assert_eq!(r.remaining(), 0);
    assert_eq!(r.finish(), Ok(()));
}

#[test]
fn cap_is_checked_before_the_bytes_left() {
    // A count of u32::MAX over 4 bytes: refused on the cap, nothing allocated.
    let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
    let e = r.len("items", 10, 8).unwrap_err();
    assert_eq!(e, CodecError::TooLong { what: "items", len: u32::MAX as usize, cap: 10 });
    assert_eq!(e.to_string(), "items: length 4294967295 exceeds cap 10");
}

#[test]
fn count_is_checked_against_the_bytes_left_before_allocating() {
    // 3 elements of at least 8 bytes need 24; only 5 follow the count at offset 4.
    let mut r = Reader::new(&[0, 0, 0, 3, 1, 2, 3, 4, 5]);
    let e = r.seq_with("items", 100, 8, |r| r.u64()).unwrap_err();
    assert_eq!(e, CodecError::Truncated { needed: 24, offset: 4, available: 5 });
    assert_eq!(e.to_string(), "truncated input: needed 24 bytes at offset 4, 5 available");
    // A huge element size saturates instead of overflowing.
    let mut r = Reader::new(&[0, 0, 0, 2]);
    assert!(matches!(r.len("items", 100, usize::MAX), Err(CodecError::Truncated { needed: usize::MAX, .. })));
}

#[test]
fn short_fields_and_prefixes_report_where() {
    let mut r = Reader::new(&[0, 0, 0, 1, 0, 0, 0, 0]);
    r.u32().unwrap();
    let e = r.u64().unwrap_err();
    assert_eq!(e.to_string(), "truncated input: needed 8 bytes at offset 4, 4 available");
    let mut r = Reader::new(&[0, 3, b'a']);
    assert_eq!(r.bytes16("tag", 64), Err(CodecError::Truncated { needed: 3, offset: 2, available: 1 }));
    let mut r = Reader::new(&[0x02, 0x01, 0, 0]);
    assert_eq!(r.bytes16("tag", 64).unwrap_err().to_string(), "tag: length 513 exceeds cap 64");
}

#[test]
fn version_and_trailing_bytes() {
    let mut r = Reader::new(&[2, 0, 0]);
    let e = r.version("batch", 1).unwrap_err();
    assert_eq!(e.to_string(), "unsupported batch encoding version 2, expected 1");
    assert_eq!(r.finish(), Err(CodecError::TrailingBytes(2)));
    assert_eq!(r.finish().unwrap_err().to_string(), "2 trailing bytes after the value");
}

#[test]
fn seq_with_passes_the_callers_error_through() {
    #[derive(Debug, PartialEq)]
    enum Mine {
        Codec(CodecError),
        Big(u8),
    }
    impl From<CodecError> for Mine {
        fn from(e: CodecError) -> Self {
            Mine::Codec(e)
        }
    }
    let mut r = Reader::new(&[0, 0, 0, 2, 4, 5]);
    let got = r.seq_with("digits", 2, 1, |r| match r.u8()? {
        d if d < 5 => Ok(d),
        d => Err(Mine::Big(d)),
    });
    assert_eq!(got, Err(Mine::Big(5)));
    let mut r = Reader::new(&[0, 0, 0, 3]);
    assert_eq!(r.seq_with("digits", 2, 1, |r| Ok::<_, Mine>(r.u8()?)), Err(Mine::Codec(CodecError::TooLong { what: "digits", len: 3, cap: 2 })));
}

#[test]
fn take_of_usize_max_is_truncated_not_an_overflow() {
    // `pos + n` would overflow: the bytes-left check comes first.
    let mut r = Reader::new(&[1, 2, 3]);
    r.u8().unwrap();
    assert_eq!(r.take(usize::MAX), Err(CodecError::Truncated { needed: usize::MAX, offset: 1, available: 2 }));
    assert_eq!(r.bytes16("x", usize::MAX), Err(CodecError::Truncated { needed: 0x0203, offset: 3, available: 0 }));
}
