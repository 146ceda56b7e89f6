//! RFC 6479 sliding anti-replay window for datagram record counters.
//!
//! A ring of 32 × 64-bit blocks: 2048 bits, of which 1984 counters behind the
//! highest one seen are tracked. [`ReplayWindow::check`] is cheap and runs
//! before decryption; [`ReplayWindow::update`] runs only after the record
//! authenticated, so forged packets cannot move the window.

const BLOCKS: usize = 32;
const BLOCK_BITS: u64 = 64;
/// How many counters below the highest seen are still accepted once.
pub const WINDOW_SIZE: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

/// The window state.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    top: u64,
    bitmap: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window (counter 0 is acceptable).
    pub const fn new() -> Self {
        Self {
            top: 0,
            bitmap: [0; BLOCKS],
        }
    }

    #[allow(clippy::cast_possible_truncation)] // modulo BLOCKS (32) fits any usize
    fn slot(counter: u64) -> (usize, u64) {
        (
            ((counter / BLOCK_BITS) % BLOCKS as u64) as usize,
            1u64 << (counter % BLOCK_BITS),
        )
    }

    /// Whether `counter` may be accepted (not seen, not too old).
    pub fn check(&self, counter: u64) -> bool {
        if counter > self.top {
            return true;
        }
        if self.top - counter >= WINDOW_SIZE {
            return false;
        }
        let (block, bit) = Self::slot(counter);
        self.bitmap[block] & bit == 0
    }

    /// Records `counter` as seen. Call only after [`ReplayWindow::check`]
    /// passed and the record authenticated.
    pub fn update(&mut self, counter: u64) {
        if counter > self.top {
            let current = self.top / BLOCK_BITS;
            let target = counter / BLOCK_BITS;
            let steps = (target - current).min(BLOCKS as u64);
            for i in 1..=steps {
                let (block, _) = Self::slot((current + i) * BLOCK_BITS);
                self.bitmap[block] = 0;
            }
            self.top = counter;
        }
        let (block, bit) = Self::slot(counter);
        self.bitmap[block] |= bit;
    }

    /// Highest counter seen.
    pub const fn highest(&self) -> u64 {
        self.top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        let mut w = ReplayWindow::new();
        assert!(w.check(0));
        w.update(0);
        assert!(!w.check(0));
        assert!(w.check(5));
        w.update(5);
        assert!(w.check(3));
        w.update(3);
        assert!(!w.check(3));
        w.update(5000);
        assert!(!w.check(5000 - WINDOW_SIZE));
        assert!(w.check(5000 - WINDOW_SIZE + 1));
        assert!(!w.check(4));
    }
}
