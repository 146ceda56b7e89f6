//! The lossy-UDP demonstration behind `netproto demo`'s last transport row
//! (issue #16): a few large messages over netproto-udp between two real
//! sockets that each drop a share of what they send (fixed seeds), and a
//! check that every message arrived exactly once, intact. Unlike W8, which
//! measures goodput, this counts what the receiving application saw.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
use netproto_testkit::LossySocket;
use netproto_transport_udp::{Delivery, UdpEndpoint};
use netproto_wire::{Frame, FrameKind};

use crate::BenchError;

/// What the lossy-UDP run saw.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct LossyDelivery {
    /// Messages sent.
    pub messages: usize,
    /// Bytes in each message.
    pub size: usize,
    /// Share of datagrams each socket dropped.
    pub loss: f64,
    /// Distinct messages the receiver got, intact.
    pub delivered: usize,
    /// Messages the receiver got more than once.
    pub duplicates: usize,
    /// Messages whose content or id was wrong.
    pub corrupted: usize,
    /// From the first send until the last message arrived.
    pub elapsed: Duration,
    /// Pieces the sender sent again.
    pub retransmitted: u64,
    /// Datagrams the sender's endpoint sent in all.
    pub datagrams: u64,
}

impl LossyDelivery {
    /// Every message arrived exactly once and intact.
    pub fn exactly_once(&self) -> bool {
        self.delivered == self.messages && self.duplicates == 0 && self.corrupted == 0
    }

    /// Application bytes delivered per second (10^6 bytes).
    pub fn goodput_mb_per_sec(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // at most a few MB
        let bytes = (self.delivered * self.size) as f64;
        bytes / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Message `id`'s content: every byte depends on the id and its place.
fn content(id: u64, size: usize) -> Bytes {
    let tag = id.to_le_bytes();
    #[allow(clippy::cast_possible_truncation)] // the low byte, on purpose
    Bytes::from(
        (0..size)
            .map(|i| tag[i % 8] ^ (i / 8) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Sends `messages` messages of `size` bytes over netproto-udp, both
/// sockets dropping `loss` of their datagrams (seeded by `seed`), and
/// counts what arrives. Waits at most `within` for the last message, then
/// a little longer for duplicates.
///
/// # Errors
/// Setting up the sockets, the handshake, or a send failing.
pub async fn lossy_delivery(
    messages: usize,
    size: usize,
    loss: f64,
    seed: u64,
    within: Duration,
) -> Result<LossyDelivery, BenchError> {
    let cfg = crate::datagram::udp_config();
    let server_key = Keypair::generate(&mut rand::rngs::OsRng);
    let server_pub = *server_key.public();
    let server = UdpEndpoint::with_socket(
        LossySocket::bind(loss, seed).await?,
        cfg.clone(),
        Some(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer))),
    )?;
    let client = UdpEndpoint::with_socket(
        LossySocket::bind(loss, seed.wrapping_add(1)).await?,
        cfg,
        None,
    )?;
    let client_hs = HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(server_pub)),
    );
    let conn = client.connect(server.local_addr(), client_hs).await?;
    let mut incoming = server.accept().await?;

    let started = Instant::now();
    let expected = messages;
    let receiver = tokio::spawn(async move {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut corrupted = 0;
        let mut last = None;
        loop {
            // After the last message, a short wait shows any duplicate.
            let wait = if seen.len() == expected {
                Duration::from_millis(300)
            } else {
                within
            };
            let Ok(Ok((frame, _))) = tokio::time::timeout(wait, incoming.recv()).await else {
                break;
            };
            if frame.kind != FrameKind::Data {
                continue;
            }
            let id = frame.stream_id;
            let valid = (1..=expected as u64).contains(&id) && frame.payload == content(id, size);
            if valid {
                *seen.entry(id).or_default() += 1;
                if seen.len() == expected && last.is_none() {
                    last = Some(started.elapsed());
                }
            } else {
                corrupted += 1;
            }
        }
        // Handed back: dropping it would end the session before the
        // sender's figures are read.
        (seen, corrupted, last, incoming)
    });
    for id in 1..=messages as u64 {
        conn.send(&Frame::data(id, content(id, size)), Delivery::Reliable)
            .await?;
    }
    let (seen, corrupted, last, incoming) = receiver
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let retransmitted = conn.stats().map_or(0, |s| s.retransmitted);
    drop(incoming);
    Ok(LossyDelivery {
        messages,
        size,
        loss,
        delivered: seen.len(),
        duplicates: seen.values().filter(|&&n| n > 1).count(),
        corrupted,
        elapsed: last.unwrap_or_else(|| started.elapsed()),
        retransmitted,
        datagrams: client.stats().sent,
    })
}
