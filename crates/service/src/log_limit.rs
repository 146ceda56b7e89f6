//! Warnings that a hostile or broken peer can repeat at will (a busy
//! server refusing a flood, connections failing one after another, accept
//! errors) are written at most once per interval, with how many were
//! folded into the next line: a client opening 1,000 connections a second
//! must not make the server write 1,000 log lines a second (issue #21 saw
//! ~1.3 MB/s of log under a handshake flood). The metrics still count
//! every event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one kind of repeated warning is written.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// One kind of repeated warning.
pub(crate) struct LogLimit {
    /// When the last line was written.
    last: Mutex<Option<Instant>>,
    /// Events since then that were not written.
    folded: AtomicU64,
}

impl LogLimit {
    pub(crate) const fn new() -> Self {
        Self {
            last: Mutex::new(None),
            folded: AtomicU64::new(0),
        }
    }

    /// Whether this event, at `now`, gets a line: `Some(n)` with the `n`
    /// events folded since the last line, or `None` (counted for the next).
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *last {
            Some(at) if now.saturating_duration_since(at) < LOG_INTERVAL => {
                self.folded.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.folded.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_rest() {
        let limit = LogLimit::new();
        let t0 = Instant::now();
        assert_eq!(limit.admit(t0), Some(0));
        for i in 1..=999u32 {
            assert_eq!(limit.admit(t0 + LOG_INTERVAL * i / 1000), None);
        }
        assert_eq!(limit.admit(t0 + LOG_INTERVAL), Some(999));
        assert_eq!(limit.admit(t0 + LOG_INTERVAL), None);
        assert_eq!(limit.admit(t0 + LOG_INTERVAL * 5), Some(1));
    }
}
