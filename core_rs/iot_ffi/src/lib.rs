//! C ABI for IoT gateway firmware (header: `tfnode/gateway/include/tfnode_iot.h`).
//!
//! The gateway half of `tfnode-iot`: SM2 keys and signatures, SM3, device-signed readings
//! and gateway batches built in steps, all byte-for-byte the encodings the node decodes.
//!
//! Rules every function follows, because C callers cannot see Rust's:
//! - an `int` return code: `TFIOT_OK` (0) or a negative `TFIOT_ERR_*`; the calling
//!   thread's message for the last failure is read with [`tfiot_last_error`];
//! - a panic never crosses the boundary: each body runs under `catch_unwind` and a panic
//!   becomes `TFIOT_ERR_INTERNAL` (the workspace builds with `panic = "unwind"`);
//! - every pointer is checked for NULL (a NULL input with length 0 is the empty input),
//!   and every output buffer for its capacity; a too-small buffer returns
//!   `TFIOT_ERR_BUFFER` with the size needed in `*out_len` and writes nothing else;
//! - secret keys are copied into Rust values that zero themselves on drop.
#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tfnode_iot::{Batch, IotError, Reading, FLAG_PARTIAL, MAX_BATCH_LEN, MAX_BATCH_READINGS};
use tfnode_sm2::SecretKey;

pub const TFIOT_OK: c_int = 0;
/// A required pointer was NULL.
pub const TFIOT_ERR_NULL: c_int = -1;
/// A secret key outside [1, n-2] (or key generation failed).
pub const TFIOT_ERR_KEY: c_int = -2;
/// Input the formats reject: kind, payload, seq 0, flags, a reading that does not decode,
/// an empty batch.
pub const TFIOT_ERR_INVALID: c_int = -3;
/// Output buffer too small: `*out_len` holds the size needed.
pub const TFIOT_ERR_BUFFER: c_int = -4;
/// The batch is full (4096 readings or 60 000 bytes): the reading was not added; finish
/// this batch and start another.
pub const TFIOT_ERR_FULL: c_int = -5;
/// The batch handle was already finished (no more readings).
pub const TFIOT_ERR_STATE: c_int = -6;
/// A bug in the library (a caught panic); the message says where.
pub const TFIOT_ERR_INTERNAL: c_int = -7;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Fail {
    code: c_int,
    msg: String,
}

fn fail<T>(code: c_int, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail { code, msg: msg.into() })
}

fn invalid(e: IotError) -> Fail {
    Fail { code: TFIOT_ERR_INVALID, msg: e.to_string() }
}

fn set_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown panic".into());
    format!("internal error (please report): {what}")
}

/// Run `f`, turning its failure or panic into a return code and the thread's last error.
fn guard(f: impl FnOnce() -> Result<(), Fail>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_error(String::new());
            TFIOT_OK
        }
        Ok(Err(Fail { code, msg })) => {
            set_error(msg);
            code
        }
        Err(p) => {
            set_error(panic_message(p.as_ref()));
            TFIOT_ERR_INTERNAL
        }
    }
}

/// Borrow `len` input bytes; NULL is allowed only for `len == 0`.
///
/// # Safety
/// A non-NULL `p` must be valid for reads of `len` bytes for `'a`.
unsafe fn input<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if p.is_null() {
        return if len == 0 { Ok(&[]) } else { fail(TFIOT_ERR_NULL, format!("{what} is NULL with length {len}")) };
    }
    if len > isize::MAX as usize {
        return fail(TFIOT_ERR_INVALID, format!("{what} length {len} is not a valid buffer length"));
    }
    // SAFETY: p is non-NULL, len <= isize::MAX, and the caller promises p is readable for len bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrow a fixed-size input array.
///
/// # Safety
/// A non-NULL `p` must be valid for reads of `N` bytes.
unsafe fn input_array<'a, const N: usize>(p: *const u8, what: &str) -> Result<&'a [u8; N], Fail> {
    if p.is_null() {
        return fail(TFIOT_ERR_NULL, format!("{what} is NULL"));
    }
    // SAFETY: non-NULL, and the caller promises N readable bytes; [u8; N] has alignment 1.
    Ok(unsafe { &*(p as *const [u8; N]) })
}

/// Borrow a fixed-size output array.
///
/// # Safety
/// A non-NULL `p` must be valid for writes of `N` bytes and not alias any input.
unsafe fn output_array<'a, const N: usize>(p: *mut u8, what: &str) -> Result<&'a mut [u8; N], Fail> {
    if p.is_null() {
        return fail(TFIOT_ERR_NULL, format!("{what} is NULL"));
    }
    // SAFETY: non-NULL, and the caller promises N writable bytes; alignment 1.
    Ok(unsafe { &mut *(p as *mut [u8; N]) })
}

/// Copy `bytes` to `out` (capacity `cap`) and set `*out_len`; if it does not fit, set
/// `*out_len` to the size needed and return `TFIOT_ERR_BUFFER`.
///
/// # Safety
/// `out_len` must be NULL or writable; a non-NULL `out` must be writable for `cap` bytes.
unsafe fn write_out(bytes: &[u8], out: *mut u8, cap: usize, out_len: *mut usize) -> Result<(), Fail> {
    if out_len.is_null() {
        return fail(TFIOT_ERR_NULL, "out_len is NULL");
    }
    // SAFETY: out_len is non-NULL and the caller promises it is writable.
    unsafe { *out_len = bytes.len() };
    if cap < bytes.len() {
        return fail(TFIOT_ERR_BUFFER, format!("output buffer holds {cap} bytes, {} needed (see *out_len)", bytes.len()));
    }
    if out.is_null() {
        return fail(TFIOT_ERR_NULL, "out is NULL");
    }
    // SAFETY: out is non-NULL and writable for cap >= bytes.len() bytes; Rust-owned `bytes`
    // cannot overlap a caller buffer.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len()) };
    Ok(())
}

fn secret(b: &[u8; 32]) -> Result<SecretKey, Fail> {
    SecretKey::from_bytes(b).map_err(|e| Fail { code: TFIOT_ERR_KEY, msg: format!("secret key: {e}") })
}

/// Generate a key pair from the operating system's CSPRNG.
///
/// # Safety
/// `out_secret32` writable for 32 bytes, `out_public33` for 33 bytes.
#[no_mangle]
pub unsafe extern "C" fn tfiot_keygen(out_secret32: *mut u8, out_public33: *mut u8) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, p) = unsafe { (output_array::<32>(out_secret32, "out_secret32")?, output_array::<33>(out_public33, "out_public33")?) };
        let sk = SecretKey::random();
        *s = sk.to_bytes();
        *p = sk.public_key().to_compressed();
        Ok(())
    })
}

/// The compressed public key (33 bytes) of a secret key.
///
/// # Safety
/// `secret32` readable for 32 bytes, `out_public33` writable for 33.
#[no_mangle]
pub unsafe extern "C" fn tfiot_public_key(secret32: *const u8, out_public33: *mut u8) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, p) = unsafe { (input_array::<32>(secret32, "secret32")?, output_array::<33>(out_public33, "out_public33")?) };
        *p = secret(s)?.public_key().to_compressed();
        Ok(())
    })
}

/// SM3 of `len` bytes.
///
/// # Safety
/// `data` readable for `len` bytes (may be NULL if `len == 0`), `out32` writable for 32.
#[no_mangle]
pub unsafe extern "C" fn tfiot_sm3(data: *const u8, len: usize, out32: *mut u8) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (d, o) = unsafe { (input(data, len, "data")?, output_array::<32>(out32, "out32")?) };
        *o = tfnode_sm3::hash(d);
        Ok(())
    })
}

/// SM2 signature (r || s, 64 bytes) of the message `msg` with the default user id
/// `1234567812345678` (e = SM3(Z || msg)); hedged random nonce.
///
/// # Safety
/// `secret32` readable for 32 bytes, `msg` for `len` (may be NULL if `len == 0`),
/// `out_sig64` writable for 64.
#[no_mangle]
pub unsafe extern "C" fn tfiot_sm2_sign(secret32: *const u8, msg: *const u8, len: usize, out_sig64: *mut u8) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, m, o) = unsafe { (input_array::<32>(secret32, "secret32")?, input(msg, len, "msg")?, output_array::<64>(out_sig64, "out_sig64")?) };
        *o = secret(s)?.sign(m, tfnode_sm2::DEFAULT_UID).to_bytes();
        Ok(())
    })
}

/// Build and sign a reading with the device key: writes its encoding (103..=166 bytes
/// today; 512 always suffices) to `out` and its length to `*out_len`.
///
/// # Safety
/// `secret32` readable for 32 bytes, `payload` for `payload_len` (NULL if 0), `out`
/// writable for `out_cap`, `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn tfiot_reading_sign(
    secret32: *const u8,
    seq: u64,
    ts_ms: u64,
    kind: u8,
    payload: *const u8,
    payload_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, p) = unsafe { (input_array::<32>(secret32, "secret32")?, input(payload, payload_len, "payload")?) };
        let sk = secret(s)?;
        let r = Reading::sign(&sk, seq, ts_ms, kind, p).map_err(invalid)?;
        // SAFETY: the caller's contract above.
        unsafe { write_out(&r.encode(), out, out_cap, out_len) }
    })
}

/// A batch under construction (opaque to C). Not thread-safe: one thread at a time.
pub struct TfiotBatch {
    gateway: SecretKey,
    batch_seq: u64,
    created_ms: u64,
    flags: u8,
    readings: Vec<Vec<u8>>,
    /// Encoded size so far (header + length-prefixed readings).
    len: usize,
    /// The signed encoding, once finished: a retry after `TFIOT_ERR_BUFFER` gets the same bytes.
    built: Option<Vec<u8>>,
}

/// Start a batch signed by the gateway key. Returns NULL on error (bad key, reserved
/// flag bits; see `tfiot_last_error`). Free it with `tfiot_batch_free`.
///
/// # Safety
/// `gateway_secret32` readable for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn tfiot_batch_new(gateway_secret32: *const u8, batch_seq: u64, created_ms: u64, flags: u8) -> *mut TfiotBatch {
    let mut handle: *mut TfiotBatch = std::ptr::null_mut();
    guard(|| {
        // SAFETY: the caller's contract above.
        let s = unsafe { input_array::<32>(gateway_secret32, "gateway_secret32")? };
        let gateway = secret(s)?;
        if flags & !FLAG_PARTIAL != 0 {
            return Err(invalid(IotError::ReservedFlags(flags)));
        }
        let b = TfiotBatch { gateway, batch_seq, created_ms, flags, readings: Vec::new(), len: tfnode_iot::HEADER_LEN, built: None };
        handle = Box::into_raw(Box::new(b));
        Ok(())
    });
    handle
}

/// Add a signed reading (its bytes are copied and must decode; the device signature is
/// not checked). `TFIOT_ERR_FULL` if it would exceed 4096 readings or 60 000 bytes.
///
/// # Safety
/// `handle` from `tfiot_batch_new`, not freed; `reading` readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn tfiot_batch_add(handle: *mut TfiotBatch, reading: *const u8, len: usize) -> c_int {
    guard(|| {
        if handle.is_null() {
            return fail(TFIOT_ERR_NULL, "batch handle is NULL");
        }
        // SAFETY: non-NULL handle from tfiot_batch_new, not freed, used by one thread (contract).
        let b = unsafe { &mut *handle };
        // SAFETY: the caller's contract above.
        let r = unsafe { input(reading, len, "reading")? };
        if b.built.is_some() {
            return fail(TFIOT_ERR_STATE, "batch already finished; start a new one");
        }
        Reading::decode(r).map_err(|e| Fail { code: TFIOT_ERR_INVALID, msg: format!("reading {}: {e}", b.readings.len()) })?;
        if b.readings.len() >= MAX_BATCH_READINGS {
            return fail(TFIOT_ERR_FULL, format!("batch full: {} readings (cap {MAX_BATCH_READINGS})", b.readings.len()));
        }
        let new_len = b.len + 2 + r.len();
        if new_len > MAX_BATCH_LEN {
            return fail(TFIOT_ERR_FULL, format!("batch full: adding {} bytes would make {new_len} (cap {MAX_BATCH_LEN})", r.len() + 2));
        }
        b.readings.push(r.to_vec());
        b.len = new_len;
        Ok(())
    })
}

/// Sign the batch and write its encoding. With `out == NULL` and `cap == 0` it only
/// reports the size (`TFIOT_ERR_BUFFER`, `*out_len` set). After the first call the batch
/// is sealed: later calls return the same bytes, and `tfiot_batch_add` fails.
///
/// # Safety
/// `handle` from `tfiot_batch_new`, not freed; `out` writable for `cap` bytes (or NULL
/// with `cap == 0`); `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn tfiot_batch_finish(handle: *mut TfiotBatch, out: *mut u8, cap: usize, out_len: *mut usize) -> c_int {
    guard(|| {
        if handle.is_null() {
            return fail(TFIOT_ERR_NULL, "batch handle is NULL");
        }
        // SAFETY: non-NULL handle from tfiot_batch_new, not freed, used by one thread (contract).
        let b = unsafe { &mut *handle };
        if b.built.is_none() {
            if b.readings.is_empty() {
                return fail(TFIOT_ERR_INVALID, "batch is empty: add at least one reading");
            }
            let refs: Vec<&[u8]> = b.readings.iter().map(|r| r.as_slice()).collect();
            b.built = Some(Batch::build(&b.gateway, b.batch_seq, b.created_ms, b.flags, &refs).map_err(invalid)?);
        }
        let bytes = b.built.as_deref().expect("built above");
        // SAFETY: the caller's contract above.
        unsafe { write_out(bytes, out, cap, out_len) }
    })
}

/// Free a batch handle (NULL is ignored). The gateway key copy is zeroed.
///
/// # Safety
/// `handle` from `tfiot_batch_new` and not freed before, or NULL.
#[no_mangle]
pub unsafe extern "C" fn tfiot_batch_free(handle: *mut TfiotBatch) {
    if handle.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the pointer came from Box::into_raw in tfiot_batch_new and is freed once (contract).
        drop(unsafe { Box::from_raw(handle) });
    }));
}

/// Copy the calling thread's last error message (UTF-8, NUL-terminated, truncated to
/// `cap - 1` bytes) into `buf`. Returns the full message length without the NUL (0 if
/// the last call succeeded); `buf` may be NULL with `cap == 0` to ask the length.
///
/// # Safety
/// `buf` writable for `cap` bytes, or NULL with `cap == 0`.
#[no_mangle]
pub unsafe extern "C" fn tfiot_last_error(buf: *mut c_char, cap: usize) -> c_int {
    let msg = LAST_ERROR.with(|e| e.borrow().clone());
    if !buf.is_null() && cap > 0 {
        let n = msg.len().min(cap - 1);
        // SAFETY: buf is writable for cap > n bytes (contract); msg is Rust-owned.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
    }
    c_int::try_from(msg.len()).unwrap_or(c_int::MAX)
}

#[cfg(test)]
mod tests;
