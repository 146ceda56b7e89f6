//! [`MemoryBudget`]: bytes that many connections draw from, so what peers
//! can make a process hold is bounded in total, not only per connection.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A shared allowance of bytes. Connections take from it before they hold
/// peer data (a message being reassembled) and give back when they let go.
/// Cheap to share (`Arc`); lock-free.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `n` bytes if they are available; false (and nothing taken) if
    /// not.
    pub fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Gives `n` bytes back.
    pub fn give(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }

    /// Bytes in use now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit.
    pub const fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryBudget;

    #[test]
    fn takes_up_to_the_limit_and_gives_back() {
        let b = MemoryBudget::new(100);
        assert!(b.try_take(60));
        assert!(!b.try_take(41));
        assert_eq!(b.used(), 60);
        assert!(b.try_take(40));
        b.give(100);
        assert_eq!(b.used(), 0);
        b.give(5);
        assert_eq!(b.used(), 0);
        assert!(!b.try_take(usize::MAX));
    }
}
