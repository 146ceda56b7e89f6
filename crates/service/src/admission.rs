//! Admission of unauthenticated connections: handshakes get a budget of
//! their own, separate from the connection slots, and each source address
//! a share of it and a rate.
//!
//! A connection takes a handshake ticket when it is accepted and a
//! connection slot only once its handshake has succeeded, so peers that
//! never finish a handshake cannot hold `max_connections` slots. A source
//! over its rate is refused before any cryptographic work: the connection
//! is dropped at once.
//!
//! Full shares do not refuse: they **preempt**. A source with its share of
//! handshakes in progress, or a server with its whole budget in progress,
//! drops its oldest handshake (the source's, or the server's) for the new
//! one. Stalled handshakes are the old ones; a genuine handshake needs one
//! or two round trips, and 64 newer ones from its source (or 512 newer
//! ones overall) must arrive first to push it out — 320 ms at a source's
//! default rate of 200 per second. So an attacker that stalls handshakes,
//! from the address of legitimate clients (a NAT, all of 127.0.0.1) or from
//! many addresses, only shortens how long each stalled one lives.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use netproto_transport::PeerAddr;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;

/// Sources remembered at most; beyond this, sources with nothing in
/// progress and a full bucket are forgotten first (a forgotten source
/// starts again with a full bucket, which is what it would have anyway).
const MAX_SOURCES: usize = 16_384;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This source started handshakes faster than its rate.
    SourceRate,
    /// Too many sources are remembered to take a new one.
    Sources,
}

impl Refusal {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::SourceRate => "source_rate",
            Self::Sources => "sources",
        }
    }
}

/// Whose handshake gave way to a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preempted {
    /// The source's share was full.
    Source,
    /// The server's budget was full.
    Server,
}

impl Preempted {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Server => "server",
        }
    }
}

/// The source a peer address counts as: an IPv4 address, or an IPv6 /64
/// (one host usually holds a whole /64, so single IPv6 addresses would let
/// it take every share).
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
    }
}

/// What handshakes are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SourceKey {
    /// An IPv4 address or an IPv6 /64.
    Ip(IpAddr),
    /// Every peer of a Unix socket (no address to tell them apart).
    Local,
}

#[derive(Debug)]
struct Source {
    /// Handshakes in progress, oldest first: ticket numbers.
    in_progress: VecDeque<u64>,
    tokens: f64,
    refilled: Instant,
}

/// Every handshake in progress, oldest (lowest number) first.
#[derive(Debug)]
struct InProgress {
    source: SourceKey,
    preempt: CancellationToken,
    /// Set when it gave way, for the task to say why.
    why: Arc<Mutex<Option<Preempted>>>,
}

#[derive(Debug, Default)]
struct State {
    sources: HashMap<SourceKey, Source>,
    in_progress: BTreeMap<u64, InProgress>,
    issued: u64,
}

impl State {
    /// Drops handshake `number` for a newer one.
    fn preempt(&mut self, number: u64, why: Preempted) {
        if let Some(h) = self.in_progress.remove(&number) {
            if let Some(s) = self.sources.get_mut(&h.source) {
                s.in_progress.retain(|n| *n != number);
            }
            if let Ok(mut w) = h.why.lock() {
                *w = Some(why);
            }
            h.preempt.cancel();
        }
    }
}

/// The server's admission state.
#[derive(Debug)]
pub(crate) struct Admission {
    max_handshakes: usize,
    per_source: usize,
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

/// A handshake in progress: counted in the server's budget and its
/// source's share until dropped or preempted.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    number: u64,
    preempt: CancellationToken,
    why: Arc<Mutex<Option<Preempted>>>,
}

impl Ticket {
    /// Completes, with whose share was full, when a newer handshake took
    /// this one's place.
    pub(crate) async fn preempted(&self) -> Preempted {
        self.preempt.cancelled().await;
        self.why
            .lock()
            .ok()
            .and_then(|w| *w)
            .unwrap_or(Preempted::Server)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        if let Some(h) = state.in_progress.remove(&self.number) {
            if let Some(s) = state.sources.get_mut(&h.source) {
                s.in_progress.retain(|n| *n != self.number);
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(cfg: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            max_handshakes: cfg.max_handshakes.max(1),
            per_source: cfg.max_handshakes_per_source.max(1) as usize,
            rate: cfg.handshake_rate_per_source.max(0.001),
            burst: f64::from(cfg.handshake_burst_per_source.max(1)),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change to the state completes between statements that
        // cannot panic: a poisoned lock still holds a consistent state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A ticket for a handshake from `peer`, or why not.
    pub(crate) fn admit(
        self: &Arc<Self>,
        peer: &PeerAddr,
        now: Instant,
    ) -> Result<Ticket, Refusal> {
        // Peers of a Unix socket are one source, whose share is the whole
        // budget and which has no rate.
        let (key, share, rated) = match peer {
            PeerAddr::Tcp(addr) | PeerAddr::Udp(addr) => {
                (SourceKey::Ip(source_of(addr.ip())), self.per_source, true)
            }
            _ => (SourceKey::Local, self.max_handshakes, false),
        };
        let mut state = self.lock();
        let state = &mut *state;
        if state.sources.len() >= MAX_SOURCES && !state.sources.contains_key(&key) {
            let (rate, burst) = (self.rate, self.burst);
            state.sources.retain(|_, s| {
                let full = s.tokens + rate * now.duration_since(s.refilled).as_secs_f64() >= burst;
                !s.in_progress.is_empty() || !full
            });
            // Still full: a new source waits until one is forgotten (the
            // map never grows past its cap).
            if state.sources.len() >= MAX_SOURCES {
                return Err(Refusal::Sources);
            }
        }
        let source = state.sources.entry(key).or_insert(Source {
            in_progress: VecDeque::new(),
            tokens: self.burst,
            refilled: now,
        });
        let elapsed = now.duration_since(source.refilled).as_secs_f64();
        source.tokens = (source.tokens + elapsed * self.rate).min(self.burst);
        source.refilled = now;
        // The rate first: a source over its rate preempts nothing.
        if rated {
            if source.tokens < 1.0 {
                return Err(Refusal::SourceRate);
            }
            source.tokens -= 1.0;
        }
        let oldest_of_source = (source.in_progress.len() >= share)
            .then(|| source.in_progress.front().copied())
            .flatten();
        if let Some(n) = oldest_of_source {
            state.preempt(n, Preempted::Source);
        }
        if state.in_progress.len() >= self.max_handshakes {
            if let Some(n) = state.in_progress.keys().next().copied() {
                state.preempt(n, Preempted::Server);
            }
        }
        state.issued += 1;
        let number = state.issued;
        let preempt = CancellationToken::new();
        let why = Arc::new(Mutex::new(None));
        state.in_progress.insert(
            number,
            InProgress {
                source: key,
                preempt: preempt.clone(),
                why: why.clone(),
            },
        );
        if let Some(s) = state.sources.get_mut(&key) {
            s.in_progress.push_back(number);
        }
        Ok(Ticket {
            admission: self.clone(),
            number,
            preempt,
            why,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::{Admission, Refusal, Ticket};
    use crate::config::ServerConfig;
    use netproto_transport::PeerAddr;
    use tokio::time::Instant;

    fn cfg() -> ServerConfig {
        let mut c = ServerConfig::new(
            "tcp://127.0.0.1:0".parse().unwrap(),
            netproto_transport::ConnectionConfig::new(netproto_crypto::HandshakeConfig::new(
                None,
                std::sync::Arc::new(netproto_crypto::AnyPeer),
            )),
        );
        c.max_handshakes = 4;
        c.max_handshakes_per_source = 2;
        c.handshake_rate_per_source = 10.0;
        c.handshake_burst_per_source = 3;
        c
    }

    fn from(ip: &str) -> PeerAddr {
        PeerAddr::Tcp(format!("{ip}:1234").parse().unwrap())
    }

    /// Whether a ticket has been preempted (without waiting).
    fn preempted(t: &Ticket) -> bool {
        t.preempt.is_cancelled()
    }

    #[test]
    fn a_full_source_preempts_its_own_oldest() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        let t1 = a.admit(&from("10.0.0.1"), now).unwrap();
        let t2 = a.admit(&from("10.0.0.1"), now).unwrap();
        let other = a.admit(&from("10.0.0.2"), now).unwrap();
        // The source's share (2) is full: its third handshake takes the
        // place of its oldest, not another source's.
        let t3 = a.admit(&from("10.0.0.1"), now).unwrap();
        assert!(preempted(&t1));
        assert!(!preempted(&t2) && !preempted(&t3) && !preempted(&other));
        // Its bucket (3) is empty now: the rate refuses, preempting nothing.
        assert_eq!(
            a.admit(&from("10.0.0.1"), now).unwrap_err(),
            Refusal::SourceRate
        );
        assert!(!preempted(&t2));
        // Dropping a preempted ticket changes nothing more.
        drop(t1);
        assert_eq!(a.lock().in_progress.len(), 3);
    }

    #[test]
    fn a_full_server_preempts_the_oldest_of_all() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        let t1 = a.admit(&from("10.0.0.1"), now).unwrap();
        let t2 = a.admit(&from("10.0.0.2"), now).unwrap();
        let t3 = a.admit(&from("10.0.0.3"), now).unwrap();
        let t4 = a.admit(&from("10.0.0.4"), now).unwrap();
        // Four in progress, the budget: a fifth source gets in, and the
        // oldest handshake of all gives way.
        let t5 = a.admit(&from("10.0.0.5"), now).unwrap();
        assert!(preempted(&t1));
        assert!([&t2, &t3, &t4, &t5].iter().all(|t| !preempted(t)));
        assert_eq!(a.lock().in_progress.len(), 4);
        // Finished handshakes leave the budget.
        drop((t2, t3));
        let t6 = a.admit(&from("10.0.0.6"), now).unwrap();
        assert!(!preempted(&t4) && !preempted(&t6));
    }

    #[tokio::test]
    async fn a_preempted_ticket_says_whose_share_was_full() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        let t1 = a.admit(&from("10.0.0.1"), now).unwrap();
        let _t2 = a.admit(&from("10.0.0.1"), now).unwrap();
        let _t3 = a.admit(&from("10.0.0.1"), now).unwrap();
        assert_eq!(t1.preempted().await, super::Preempted::Source);
    }

    #[test]
    fn an_ipv6_64_is_one_source() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        let t1 = a.admit(&from("[2001:db8::1]"), now).unwrap();
        let _t2 = a.admit(&from("[2001:db8::2]"), now).unwrap();
        let _t3 = a.admit(&from("[2001:db8::3]"), now).unwrap();
        // One source: the third preempted the first.
        assert!(preempted(&t1));
        let other = a.admit(&from("[2001:db8:0:1::1]"), now).unwrap();
        assert!(!preempted(&other));
    }

    #[test]
    fn unix_socket_peers_are_one_source_with_the_whole_budget_and_no_rate() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        let local = PeerAddr::Unix(None);
        let held: Vec<_> = (0..10).map(|_| a.admit(&local, now).unwrap()).collect();
        // No rate (3 tokens would be spent); the newest four hold the
        // budget, the older ones gave way.
        assert!(held[..6].iter().all(preempted));
        assert!(held[6..].iter().all(|t| !preempted(t)));
    }

    #[test]
    fn the_rate_refills() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        for _ in 0..3 {
            drop(a.admit(&from("10.0.0.1"), now).unwrap());
        }
        assert_eq!(
            a.admit(&from("10.0.0.1"), now).unwrap_err(),
            Refusal::SourceRate
        );
        let later = now + Duration::from_millis(100);
        assert!(a.admit(&from("10.0.0.1"), later).is_ok());
    }
}
