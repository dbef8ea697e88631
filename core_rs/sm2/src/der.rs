//! Minimal strict DER for `SEQUENCE { INTEGER, INTEGER }` with 256-bit unsigned values.
//! Every length fits the short form (the largest encoding is 2 + 2 * 35 = 72 bytes), so
//! the long form is always non-minimal and rejected.

use crate::Error;

/// One INTEGER's content octets for an unsigned big-endian value.
fn push_int(out: &mut Vec<u8>, v: &[u8; 32]) {
    let start = v.iter().position(|&b| b != 0).unwrap_or(31);
    let body = &v[start..];
    let pad = body[0] & 0x80 != 0;
    out.push(0x02);
    out.push((body.len() + pad as usize) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(body);
}

pub(crate) fn encode(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(70);
    push_int(&mut body, r);
    push_int(&mut body, s);
    let mut out = Vec::with_capacity(72);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

/// Parse one INTEGER from the front of `b`; returns (value, rest).
fn take_int(b: &[u8]) -> Result<([u8; 32], &[u8]), Error> {
    let (&tag, rest) = b.split_first().ok_or(Error::Der("truncated before INTEGER"))?;
    if tag != 0x02 {
        return Err(Error::Der("expected INTEGER tag 0x02"));
    }
    let (&len, rest) = rest.split_first().ok_or(Error::Der("truncated INTEGER length"))?;
    if len & 0x80 != 0 {
        return Err(Error::Der("INTEGER length not in minimal short form"));
    }
    let len = len as usize;
    if len == 0 {
        return Err(Error::Der("empty INTEGER"));
    }
    if rest.len() < len {
        return Err(Error::Der("INTEGER runs past the end"));
    }
    let (content, rest) = rest.split_at(len);
    if content[0] & 0x80 != 0 {
        return Err(Error::Der("negative INTEGER"));
    }
    if len > 1 && content[0] == 0 && content[1] & 0x80 == 0 {
        return Err(Error::Der("INTEGER not minimally encoded"));
    }
    let digits = if content[0] == 0 { &content[1..] } else { content };
    if digits.len() > 32 {
        return Err(Error::Der("INTEGER longer than 256 bits"));
    }
    let mut v = [0u8; 32];
    v[32 - digits.len()..].copy_from_slice(digits);
    Ok((v, rest))
}

pub(crate) fn decode(b: &[u8]) -> Result<([u8; 32], [u8; 32]), Error> {
    if b.len() < 2 || b[0] != 0x30 {
        return Err(Error::Der("expected SEQUENCE tag 0x30"));
    }
    if b[1] & 0x80 != 0 {
        return Err(Error::Der("SEQUENCE length not in minimal short form"));
    }
    let len = b[1] as usize;
    if b.len() != 2 + len {
        return Err(Error::Der("SEQUENCE length does not match the input (trailing or missing bytes)"));
    }
    let (r, rest) = take_int(&b[2..])?;
    let (s, rest) = take_int(rest)?;
    if !rest.is_empty() {
        return Err(Error::Der("trailing bytes inside SEQUENCE"));
    }
    Ok((r, s))
}
