//! The handshake over datagrams: message layout, mac1/mac2, cookie replies,
//! the cookie secret and per-source rate limits.
//!
//! ```text
//! HANDSHAKE  envelope(type 0x01, session = receiver's index (0 in message 0),
//!                     counter = message number 0, 1 or 2)
//!            sender's index u32 BE | Noise message | message 0 only: mac1 16 | mac2 16
//! COOKIE     envelope(type 0x04, session = initiator's index, counter 0)
//!            nonce 24 | XChaCha20-Poly1305(cookie) 32
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use netproto_crypto::cookie::{
    mac, mac_eq, CookieKeys, COOKIE_NONCE_LEN, MAC_LEN, SEALED_COOKIE_LEN,
};
use netproto_wire::{DatagramHeader, DatagramType, ENVELOPE_LEN};

/// Bytes of the two MACs at the end of message 0.
pub(crate) const MACS_LEN: usize = 2 * MAC_LEN;
/// Length of a whole COOKIE datagram.
pub(crate) const COOKIE_DATAGRAM_LEN: usize = ENVELOPE_LEN + COOKIE_NONCE_LEN + SEALED_COOKIE_LEN;
/// The cookie secret is replaced this often (WireGuard's figure); a cookie
/// is accepted under the current and the previous secret.
pub(crate) const COOKIE_SECRET_LIFETIME: Duration = Duration::from_mins(2);
/// Most sources the rate limiter tracks (about 4 MiB of state at most).
const MAX_SOURCES: usize = 65_536;

/// Appends a HANDSHAKE datagram without MACs.
pub(crate) fn handshake_datagram(
    receiver: u32,
    number: u64,
    sender: u32,
    noise: &[u8],
    out: &mut Vec<u8>,
) {
    DatagramHeader {
        kind: DatagramType::Handshake,
        session: receiver,
        counter: number,
        fragment: None,
        key_phase: false,
    }
    .write(out);
    out.extend_from_slice(&sender.to_be_bytes());
    out.extend_from_slice(noise);
}

/// Appends mac1 and mac2 (zero without a cookie) to message 0; returns mac1.
pub(crate) fn append_macs(
    out: &mut Vec<u8>,
    keys: &CookieKeys,
    cookie: Option<&[u8; MAC_LEN]>,
) -> [u8; MAC_LEN] {
    let mac1 = mac(&keys.mac1, &[out]);
    out.extend_from_slice(&mac1);
    let mac2 = cookie.map_or([0; MAC_LEN], |c| mac(c, &[out]));
    out.extend_from_slice(&mac2);
    mac1
}

/// Splits message 0 into the bytes mac1 covers, mac1 and mac2.
pub(crate) fn split_macs(datagram: &[u8]) -> Option<(&[u8], [u8; MAC_LEN], [u8; MAC_LEN])> {
    let (rest, mac2) = datagram.split_last_chunk::<MAC_LEN>()?;
    let (covered, mac1) = rest.split_last_chunk::<MAC_LEN>()?;
    Some((covered, *mac1, *mac2))
}

/// Checks mac1 under `keys`.
pub(crate) fn mac1_valid(keys: &CookieKeys, covered: &[u8], mac1: &[u8; MAC_LEN]) -> bool {
    mac_eq(&mac(&keys.mac1, &[covered]), mac1)
}

/// A COOKIE datagram.
pub(crate) fn cookie_datagram(
    initiator: u32,
    nonce: &[u8; COOKIE_NONCE_LEN],
    sealed: &[u8; SEALED_COOKIE_LEN],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(COOKIE_DATAGRAM_LEN);
    DatagramHeader {
        kind: DatagramType::Cookie,
        session: initiator,
        counter: 0,
        fragment: None,
        key_phase: false,
    }
    .write(&mut out);
    out.extend_from_slice(nonce);
    out.extend_from_slice(sealed);
    out
}

/// The responder's rotating cookie secret.
#[derive(Debug)]
pub(crate) struct CookieJar {
    current: [u8; 32],
    previous: [u8; 32],
    rotated: Instant,
}

fn address_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut v = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    v.extend_from_slice(&addr.port().to_be_bytes());
    v
}

impl CookieJar {
    pub(crate) fn new(secret: [u8; 32], now: Instant) -> Self {
        Self {
            current: secret,
            previous: secret,
            rotated: now,
        }
    }

    /// Replaces the secret once it is older than its lifetime.
    pub(crate) fn rotate_if_due(&mut self, now: Instant, fresh: impl FnOnce() -> [u8; 32]) {
        if now.saturating_duration_since(self.rotated) >= COOKIE_SECRET_LIFETIME {
            self.previous = self.current;
            self.current = fresh();
            self.rotated = now;
        }
    }

    /// The cookie for a source address.
    pub(crate) fn cookie(&self, source: SocketAddr) -> [u8; MAC_LEN] {
        mac(&self.current, &[&address_bytes(source)])
    }

    /// Whether `mac2` over `covered` is valid for `source`.
    pub(crate) fn mac2_valid(
        &self,
        source: SocketAddr,
        covered: &[u8],
        mac2: &[u8; MAC_LEN],
    ) -> bool {
        let addr = address_bytes(source);
        [&self.current, &self.previous].into_iter().any(|secret| {
            let cookie = mac(secret, &[&addr]);
            mac_eq(&mac(&cookie, &[covered]), mac2)
        })
    }
}

/// Token buckets per source address.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: HashMap<IpAddr, (f64, Instant)>,
    rate: f64,
    burst: f64,
}

impl RateLimiter {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Self {
            buckets: HashMap::new(),
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
        }
    }

    /// Takes a token for `ip` if one is left.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&ip) {
            // Forget sources whose bucket has refilled: they lose nothing.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= MAX_SOURCES {
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_refills() {
        let mut r = RateLimiter::new(20, 5);
        let t = Instant::now();
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert_eq!((0..10).filter(|_| r.allow(ip, t)).count(), 5);
        assert!(r.allow(ip, t + Duration::from_millis(50)));
        assert!(!r.allow(ip, t + Duration::from_millis(50)));
        assert!(r.allow(IpAddr::from([127, 0, 0, 2]), t));
    }

    #[test]
    fn mac2_is_bound_to_the_source_and_survives_one_rotation() {
        let t = Instant::now();
        let mut jar = CookieJar::new([1; 32], t);
        let a = SocketAddr::from(([10, 0, 0, 1], 1000));
        let b = SocketAddr::from(([10, 0, 0, 1], 1001));
        let m = mac(&jar.cookie(a), &[b"msg"]);
        assert!(jar.mac2_valid(a, b"msg", &m));
        assert!(!jar.mac2_valid(b, b"msg", &m));
        jar.rotate_if_due(t + COOKIE_SECRET_LIFETIME, || [2; 32]);
        assert!(jar.mac2_valid(a, b"msg", &m));
        jar.rotate_if_due(t + 2 * COOKIE_SECRET_LIFETIME, || [3; 32]);
        assert!(!jar.mac2_valid(a, b"msg", &m));
    }
}
