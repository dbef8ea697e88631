//! CPU feature detection, done once and cached in an atomic.

use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const BMI2: u8 = 1 << 1;
const AVX2: u8 = 1 << 2;
const AVX512: u8 = 1 << 3;
const DETECTED: u8 = 1 << 7;

static FEATURES: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cold]
fn detect() -> u8 {
    let mut f = DETECTED;
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("bmi2") {
            f |= BMI2;
        }
        if std::is_x86_feature_detected!("avx2") {
            f |= AVX2;
        }
        // The 16-lane path uses vprold/vpternlogd (F) and vpshufb on zmm (BW).
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            f |= AVX512;
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
pub(crate) fn has_bmi2() -> bool {
    features() & BMI2 != 0
}

#[inline]
pub(crate) fn has_avx2() -> bool {
    features() & AVX2 != 0
}

#[inline]
pub(crate) fn has_avx512() -> bool {
    features() & AVX512 != 0
}
