//! Backoff for reconnecting: exponential, capped, with jitter so that many
//! clients of a restarted server do not all come back at the same instant.

use std::time::Duration;

use rand::Rng;

/// The delay before reconnect attempt `attempt` (0-based): `base × 2^attempt`,
/// capped at `cap`, then scaled by a random factor in [0.5, 1.0). The first
/// attempt waits too (half of `base` at least), so a server that just went
/// down is not hammered at once.
pub(crate) fn backoff(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
    let capped = exp.min(cap);
    capped.mul_f64(rand::thread_rng().gen_range(0.5..1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for attempt in 0..30 {
            let d = backoff(base, attempt, cap);
            let full = base.saturating_mul(1 << attempt.min(20)).min(cap);
            assert!(d >= full / 2 && d < full, "attempt {attempt}: {d:?}");
        }
    }
}
