//! A simulated datagram network in virtual time, for sans-IO endpoints.
//!
//! Every datagram handed to [`SimLink::send`] meets the link's faults —
//! loss, duplication, extra delay (which reorders), truncation, bit flips,
//! an MTU, and partitions — decided by a seeded RNG, so a run is the same
//! every time. Nothing sleeps: the test asks [`SimLink::next_arrival`] when
//! the next datagram lands and advances its own clock to it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the link does to datagrams. Probabilities are per datagram.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LinkFaults {
    /// One-way delay every datagram takes.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter` (reorders datagrams).
    pub jitter: Duration,
    /// Probability a datagram is dropped.
    pub loss: f64,
    /// Probability a datagram arrives twice (the copy with its own delay).
    pub duplicate: f64,
    /// Probability a datagram loses a random number of trailing bytes.
    pub truncate: f64,
    /// Probability one random bit of a datagram is flipped.
    pub bit_flip: f64,
    /// Datagrams longer than this are dropped (counted as `too_big`).
    pub mtu: usize,
}

impl Default for LinkFaults {
    /// A clean link: 1 ms one way, no faults, 1500-byte MTU.
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            truncate: 0.0,
            bit_flip: 0.0,
            mtu: 1500,
        }
    }
}

impl LinkFaults {
    /// A clean link with this one-way delay.
    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// Sets the loss probability.
    #[must_use]
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Sets the duplication probability.
    #[must_use]
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the jitter (reordering).
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the truncation and bit-flip probabilities.
    #[must_use]
    pub fn corrupt(mut self, truncate: f64, bit_flip: f64) -> Self {
        self.truncate = truncate;
        self.bit_flip = bit_flip;
        self
    }
}

/// A datagram in flight or delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDatagram {
    /// When it arrives.
    pub at: Instant,
    /// Who sent it.
    pub from: SocketAddr,
    /// Who receives it.
    pub to: SocketAddr,
    /// Its bytes, as the faults left them.
    pub bytes: Vec<u8>,
}

/// What happened to the datagrams sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams handed to the link.
    pub sent: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped by a partition.
    pub partitioned: u64,
    /// Dropped for exceeding the MTU.
    pub too_big: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Truncated or bit-flipped.
    pub corrupted: u64,
    /// Handed to a receiver.
    pub delivered: u64,
}

/// A datagram in flight, ordered by arrival, then by send order.
#[derive(Debug)]
struct Queued {
    seq: u64,
    datagram: SimDatagram,
}

impl Queued {
    fn key(&self) -> (Instant, u64) {
        (self.datagram.at, self.seq)
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The simulated network. See the module documentation.
#[derive(Debug)]
pub struct SimLink {
    rng: StdRng,
    faults: LinkFaults,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    partitions: Vec<(Instant, Instant)>,
    stats: LinkStats,
}

impl SimLink {
    /// A link with these faults, deterministic for a `seed`.
    pub fn new(seed: u64, faults: LinkFaults) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            faults,
            queue: BinaryHeap::new(),
            seq: 0,
            partitions: Vec::new(),
            stats: LinkStats::default(),
        }
    }

    /// Replaces the faults from now on.
    pub fn set_faults(&mut self, faults: LinkFaults) {
        self.faults = faults;
    }

    /// Drops every datagram sent in `from..until` (both directions).
    pub fn partition(&mut self, from: Instant, until: Instant) {
        self.partitions.push((from, until));
    }

    /// What happened so far.
    pub const fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Hands a datagram to the link at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.stats.sent += 1;
        if self.partitions.iter().any(|&(a, b)| a <= now && now < b) {
            self.stats.partitioned += 1;
            return;
        }
        if bytes.len() > self.faults.mtu {
            self.stats.too_big += 1;
            return;
        }
        if self.rng.gen_bool(self.faults.loss.clamp(0.0, 1.0)) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.gen_bool(self.faults.duplicate.clamp(0.0, 1.0)) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut data = bytes.to_vec();
            self.corrupt(&mut data);
            let jitter = if self.faults.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.rng.gen_range(Duration::ZERO..=self.faults.jitter)
            };
            let at = now + self.faults.delay + jitter;
            self.queue.push(Reverse(Queued {
                seq: self.seq,
                datagram: SimDatagram {
                    at,
                    from,
                    to,
                    bytes: data,
                },
            }));
            self.seq += 1;
        }
    }

    fn corrupt(&mut self, data: &mut Vec<u8>) {
        let mut hit = false;
        if !data.is_empty() && self.rng.gen_bool(self.faults.truncate.clamp(0.0, 1.0)) {
            let keep = self.rng.gen_range(0..data.len());
            data.truncate(keep);
            hit = true;
        }
        if !data.is_empty() && self.rng.gen_bool(self.faults.bit_flip.clamp(0.0, 1.0)) {
            let at = self.rng.gen_range(0..data.len());
            data[at] ^= 1 << self.rng.gen_range(0..8);
            hit = true;
        }
        if hit {
            self.stats.corrupted += 1;
        }
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(q)| q.datagram.at)
    }

    /// Takes the next datagram that has arrived by `now`.
    pub fn deliver(&mut self, now: Instant) -> Option<SimDatagram> {
        if self.next_arrival()? > now {
            return None;
        }
        let Reverse(q) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(q.datagram)
    }

    /// Number of datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn same_seed_same_fate() {
        let run = |seed| {
            let mut link = SimLink::new(
                seed,
                LinkFaults::default()
                    .loss(0.2)
                    .duplicate(0.1)
                    .jitter(Duration::from_millis(5)),
            );
            let t = Instant::now();
            for i in 0u8..100 {
                link.send(t, addr(1), addr(2), &[i]);
            }
            let mut got = Vec::new();
            while let Some(d) = link.deliver(t + Duration::from_secs(1)) {
                got.push(d.bytes[0]);
            }
            (got, link.stats())
        };
        assert_eq!(run(7), run(7));
        let (got, stats) = run(7);
        assert_eq!(stats.delivered, got.len() as u64);
        assert!(stats.lost > 5 && stats.lost < 40, "{stats:?}");
        assert!(got.windows(2).any(|w| w[0] > w[1]), "jitter reorders");
    }

    #[test]
    fn partitions_and_mtu_drop() {
        let mut link = SimLink::new(1, LinkFaults::default());
        let t = Instant::now();
        link.partition(t, t + Duration::from_secs(1));
        link.send(t, addr(1), addr(2), b"x");
        link.send(t + Duration::from_secs(1), addr(1), addr(2), &[0; 1501]);
        link.send(t + Duration::from_secs(1), addr(1), addr(2), b"y");
        assert_eq!(link.deliver(t).map(|d| d.bytes), None);
        let d = link.deliver(t + Duration::from_secs(2)).map(|d| d.bytes);
        assert_eq!(d.as_deref(), Some(&b"y"[..]));
        let s = link.stats();
        assert_eq!((s.partitioned, s.too_big, s.delivered), (1, 1, 1));
    }
}
