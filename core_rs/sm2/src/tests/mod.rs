//! Unit and property tests (seeded; fast under the workspace's opt-level 2 test profile).

mod api;
mod arith;
mod edges;
#[cfg(target_arch = "x86_64")]
mod ifma;
mod vectors;

/// Proptest configuration with a fixed seed, so failures reproduce on every machine.
pub(crate) fn seeded(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5320_0001),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Tests that change the process-wide key-cache capacity hold this lock.
pub(crate) static CACHE_CAPACITY_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
