//! Admission of unauthenticated connections: handshakes get a budget of
//! their own, separate from the connection slots, and each source address
//! a share of it and a rate.
//!
//! A connection takes a handshake ticket when it is accepted and a
//! connection slot only once its handshake has succeeded, so peers that
//! never finish a handshake cannot hold `max_connections` slots, and one
//! source cannot take the whole handshake budget. Refusals happen before
//! any cryptographic work: a refused connection is dropped at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use netproto_transport::PeerAddr;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ServerConfig;

/// Sources remembered at most; beyond this, sources with nothing in
/// progress and a full bucket are forgotten first (a forgotten source
/// starts again with a full bucket, which is what it would have anyway).
const MAX_SOURCES: usize = 16_384;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every handshake slot of the server is taken.
    Handshakes,
    /// This source has its share of handshakes in progress.
    SourceConcurrent,
    /// This source started handshakes faster than its rate.
    SourceRate,
    /// Too many sources are remembered to take a new one.
    Sources,
}

impl Refusal {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Handshakes => "handshakes",
            Self::SourceConcurrent => "source_concurrent",
            Self::SourceRate => "source_rate",
            Self::Sources => "sources",
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

#[derive(Debug)]
struct Source {
    in_progress: u32,
    tokens: f64,
    refilled: Instant,
}

/// The server's admission state.
#[derive(Debug)]
pub(crate) struct Admission {
    handshakes: Arc<Semaphore>,
    per_source: u32,
    rate: f64,
    burst: f64,
    sources: Mutex<HashMap<IpAddr, Source>>,
}

/// A handshake in progress: holds a handshake slot and its source's share
/// until dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    _permit: OwnedSemaphorePermit,
    source: Option<(Arc<Admission>, IpAddr)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((admission, ip)) = self.source.take() {
            let mut sources = admission
                .sources
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(s) = sources.get_mut(&ip) {
                s.in_progress = s.in_progress.saturating_sub(1);
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(cfg: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            handshakes: Arc::new(Semaphore::new(cfg.max_handshakes.max(1))),
            per_source: cfg.max_handshakes_per_source.max(1),
            rate: cfg.handshake_rate_per_source.max(0.001),
            burst: f64::from(cfg.handshake_burst_per_source.max(1)),
            sources: Mutex::new(HashMap::new()),
        })
    }

    /// A ticket for a handshake from `peer`, or why not.
    pub(crate) fn admit(
        self: &Arc<Self>,
        peer: &PeerAddr,
        now: Instant,
    ) -> Result<Ticket, Refusal> {
        let ip = match peer {
            PeerAddr::Tcp(addr) | PeerAddr::Udp(addr) => Some(source_of(addr.ip())),
            // Local peers of a Unix socket share no address to tell apart.
            _ => None,
        };
        let Some(ip) = ip else {
            let permit = self
                .handshakes
                .clone()
                .try_acquire_owned()
                .map_err(|_| Refusal::Handshakes)?;
            return Ok(Ticket {
                _permit: permit,
                source: None,
            });
        };
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            sources.retain(|_, s| {
                let full = s.tokens + rate * now.duration_since(s.refilled).as_secs_f64() >= burst;
                s.in_progress > 0 || !full
            });
            // Still full: a new source waits until one is forgotten (the
            // map never grows past its cap).
            if sources.len() >= MAX_SOURCES {
                return Err(Refusal::Sources);
            }
        }
        let source = sources.entry(ip).or_insert(Source {
            in_progress: 0,
            tokens: self.burst,
            refilled: now,
        });
        let elapsed = now.duration_since(source.refilled).as_secs_f64();
        source.tokens = (source.tokens + elapsed * self.rate).min(self.burst);
        source.refilled = now;
        if source.in_progress >= self.per_source {
            return Err(Refusal::SourceConcurrent);
        }
        if source.tokens < 1.0 {
            return Err(Refusal::SourceRate);
        }
        let permit = self
            .handshakes
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Handshakes)?;
        source.tokens -= 1.0;
        source.in_progress += 1;
        Ok(Ticket {
            _permit: permit,
            source: Some((self.clone(), ip)),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::{Admission, Refusal};
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

    #[test]
    fn a_source_gets_its_share_and_others_still_get_in() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        let t1 = a.admit(&from("10.0.0.1"), now).unwrap();
        let _t2 = a.admit(&from("10.0.0.1"), now).unwrap();
        assert_eq!(
            a.admit(&from("10.0.0.1"), now).unwrap_err(),
            Refusal::SourceConcurrent
        );
        let _t3 = a.admit(&from("10.0.0.2"), now).unwrap();
        drop(t1);
        // Its third token, then the bucket is empty.
        let _t4 = a.admit(&from("10.0.0.1"), now).unwrap();
        let _t5 = a.admit(&from("10.0.0.3"), now).unwrap();
        // Four handshakes in progress: the server budget is full.
        assert_eq!(
            a.admit(&from("10.0.0.4"), now).unwrap_err(),
            Refusal::Handshakes
        );
    }

    #[test]
    fn an_ipv6_64_is_one_source() {
        let a = Admission::new(&cfg());
        let now = Instant::now();
        let _t1 = a.admit(&from("[2001:db8::1]"), now).unwrap();
        let _t2 = a.admit(&from("[2001:db8::2]"), now).unwrap();
        assert_eq!(
            a.admit(&from("[2001:db8::3]"), now).unwrap_err(),
            Refusal::SourceConcurrent
        );
        assert!(a.admit(&from("[2001:db8:0:1::1]"), now).is_ok());
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
