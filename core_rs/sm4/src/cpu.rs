//! CPU feature detection, done once and cached in an atomic.

use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
/// PCLMULQDQ + SSSE3 (pshufb for the byte reversal): the GHASH path.
const CLMUL: u8 = 1 << 1;
/// AES-NI (with CLMUL): the SM4 S-box through AESENCLAST, 4 blocks per xmm.
const AESNI: u8 = 1 << 2;
/// VAES + AVX2 (with AESNI): AESENCLAST on ymm, 8 blocks per vector.
const VAES: u8 = 1 << 3;
const DETECTED: u8 = 1 << 7;

static FEATURES: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cold]
fn detect() -> u8 {
    let mut f = DETECTED;
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("pclmulqdq") && std::is_x86_feature_detected!("ssse3") {
            f |= CLMUL;
            if std::is_x86_feature_detected!("aes") {
                f |= AESNI;
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("vaes") {
                    f |= VAES;
                }
            }
        }
    }
    FEATURES.store(f, Ordering::Relaxed);
    f
}

#[inline]
fn features() -> u8 {
    let f = FEATURES.load(Ordering::Relaxed);
    if f == UNKNOWN {
        detect()
    } else {
        f
    }
}

#[inline]
pub(crate) fn has_clmul() -> bool {
    features() & CLMUL != 0
}

#[inline]
pub(crate) fn has_aesni() -> bool {
    features() & AESNI != 0
}

#[inline]
pub(crate) fn has_vaes() -> bool {
    features() & VAES != 0
}
