//! [`MemoryBudget`]: bytes that many connections draw from, so what peers
//! can make a process hold is bounded in total, not only per connection;
//! [`BudgetShare`]: one holder's draw on it, with a floor of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// What each connection may queue for sending before it draws on a shared
/// send budget (`ConnectionConfig::send_budget`): 64 KiB, so a thousand
/// connections hold at most 64 MiB of small answers of their own, and a
/// budget spent by slow readers never delays a small answer.
pub const SEND_FLOOR: usize = 64 * 1024;

/// A shared allowance of bytes. Connections take from it before they hold
/// peer data (a message being reassembled, an answer queued for a slow
/// reader) and give back when they let go. Cheap to share (`Arc`); taking
/// and giving are lock-free; [`MemoryBudget::released`] lets a holder wait
/// for room.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// Holders that wait for room (rare: only a full budget has any).
    waiting: AtomicUsize,
    released: Notify,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            released: Notify::new(),
        }
    }

    /// Waits until bytes are given back (call again after it returns; a
    /// wake-up is no promise of room). Register before checking, as with
    /// [`Notify::notified`]: `let wait = budget.released(); ...; wait.await`.
    pub fn released(&self) -> Released<'_> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Released {
            budget: self,
            notified: Box::pin(self.released.notified()),
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

    /// Takes `n` bytes whether or not they are available: for bytes already
    /// committed (a payload that could not say its size before it was
    /// encoded). The budget may then be over its limit until they are given
    /// back.
    pub fn take(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_add(n))
            });
    }

    /// Gives `n` bytes back.
    pub fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.released.notify_waiters();
        }
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

/// A wait for bytes to come back to a [`MemoryBudget`] (see
/// [`MemoryBudget::released`]).
pub struct Released<'a> {
    budget: &'a MemoryBudget,
    notified: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
}

impl Released<'_> {
    /// Registers the wait now, so that a release between this call and the
    /// first poll is not missed.
    pub fn enable(&mut self) {
        self.notified.as_mut().enable();
    }
}

impl std::fmt::Debug for Released<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Released").finish_non_exhaustive()
    }
}

impl std::future::Future for Released<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.notified.as_mut().poll(cx)
    }
}

impl Drop for Released<'_> {
    fn drop(&mut self) {
        self.budget.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One holder's draw on a shared [`MemoryBudget`]: the first `floor` bytes it
/// holds are its own (so a busy budget never stalls a holder's small
/// messages), whatever it holds beyond comes from the budget. Given back in
/// full when dropped.
///
/// A server gives each connection one for the answers queued to it and one
/// for the requests it is handling: what all peers together can make it
/// hold is `connections × floor + budget`, and a slow reader's share of the
/// budget is what it is actually reading.
#[derive(Debug)]
pub struct BudgetShare {
    budget: Arc<MemoryBudget>,
    floor: usize,
    held: usize,
    charged: usize,
}

impl BudgetShare {
    /// A share of `budget` holding nothing yet.
    pub fn new(budget: Arc<MemoryBudget>, floor: usize) -> Self {
        Self {
            budget,
            floor,
            held: 0,
            charged: 0,
        }
    }

    /// Holds `n` more bytes if the floor and the budget have room; false
    /// (and nothing held) if not.
    pub fn try_hold(&mut self, n: usize) -> bool {
        let held = self.held.saturating_add(n);
        let need = held.saturating_sub(self.floor).saturating_sub(self.charged);
        if need > 0 && !self.budget.try_take(need) {
            return false;
        }
        self.charged += need;
        self.held = held;
        true
    }

    /// Whether `n` more bytes would fit now (nothing is taken).
    pub fn fits(&self, n: usize) -> bool {
        let need = self
            .held
            .saturating_add(n)
            .saturating_sub(self.floor)
            .saturating_sub(self.charged);
        need == 0 || self.budget.used().saturating_add(need) <= self.budget.limit()
    }

    /// Holds `n` more bytes that are already committed, drawing on the
    /// budget even past its limit (see [`MemoryBudget::take`]).
    pub fn hold(&mut self, n: usize) {
        let held = self.held.saturating_add(n);
        let need = held.saturating_sub(self.floor).saturating_sub(self.charged);
        self.budget.take(need);
        self.charged += need;
        self.held = held;
    }

    /// Lets go of `n` bytes (what the floor no longer covers goes back to
    /// the budget).
    pub fn release(&mut self, n: usize) {
        self.held = self.held.saturating_sub(n);
        let keep = self.held.saturating_sub(self.floor);
        if self.charged > keep {
            self.budget.give(self.charged - keep);
            self.charged = keep;
        }
    }

    /// Bytes held now.
    pub const fn held(&self) -> usize {
        self.held
    }

    /// The budget drawn on.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }
}

impl Drop for BudgetShare {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{BudgetShare, MemoryBudget};

    #[test]
    fn a_share_holds_its_floor_freely_and_the_rest_from_the_budget() {
        let budget = Arc::new(MemoryBudget::new(90));
        let mut a = BudgetShare::new(budget.clone(), 10);
        let mut b = BudgetShare::new(budget.clone(), 10);
        assert!(a.try_hold(10));
        assert_eq!(budget.used(), 0);
        assert!(a.try_hold(90));
        assert_eq!(budget.used(), 90);
        // The budget is spent, but b's floor is its own.
        assert!(b.try_hold(10));
        assert!(!b.try_hold(1));
        assert!(!b.fits(1));
        assert_eq!(b.held(), 10);
        a.release(50);
        assert_eq!(budget.used(), 40);
        assert!(b.try_hold(50));
        assert_eq!(budget.used(), 90);
        drop(a);
        assert_eq!(budget.used(), 50);
        b.release(60);
        assert_eq!(budget.used(), 0);
        assert!(b.try_hold(5));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_waiter_is_woken_when_bytes_come_back() {
        let budget = Arc::new(MemoryBudget::new(10));
        assert!(budget.try_take(10));
        let mut wait = budget.released();
        wait.enable();
        budget.give(4);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), wait).await;
        assert!(woken.is_ok());
        assert!(budget.try_take(4));
    }

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
