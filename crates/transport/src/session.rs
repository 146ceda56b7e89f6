//! Connections whose protocol runs in another carrier's own driver (UDP's
//! datagram sessions): what a [`Connection`](crate::Connection) needs of
//! them. A carrier implements [`SessionSend`] and [`SessionRecv`] and hands
//! the pair to [`Connection::from_session`](crate::Connection::from_session);
//! the service, the client and the pool then use it exactly like a stream
//! connection.
//!
//! The rules every such connection shares are written here once: frames the
//! application may not send are refused, payloads are encoded before they
//! are queued, and the peer's GOAWAY is remembered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use netproto_crypto::{Capabilities, CipherSuite, Pattern, PublicKey};
use netproto_wire::{Compression, Frame, FrameKind};

use crate::carrier::BoxFuture;
use crate::core::ConnectionInfo;
use crate::error::{Result, TransportError};
use crate::payload::Payload;

/// How a message travels on a carrier that can lose or reorder datagrams
/// (UDP). On byte streams (TCP, Unix sockets, TLS) every message is
/// reliable and in order, whatever is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// Retransmitted until acknowledged, and handed to the peer's
    /// application in the order sent (as on a stream). The default, and
    /// what requests and responses use: a GOAWAY's `last_stream_id` then
    /// splits requests exactly into served and not served.
    #[default]
    Ordered,
    /// Retransmitted until acknowledged, handed over as soon as it is whole
    /// (a lost datagram delays only its own message).
    Reliable,
    /// Sent once; may be lost, never duplicated (vstp's fire-and-forget).
    Unreliable,
}

/// How long a send may wait for room in the carrier's send buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Room {
    /// As long as it takes (the connection's own deadlines still apply).
    Wait,
    /// At most this long without progress, then
    /// [`TransportError::Backpressure`].
    WaitAtMost(Duration),
    /// Not at all: [`TransportError::Backpressure`] at once.
    NoWait,
}

/// Chooses a frame's stream id at the moment it is queued (see
/// [`crate::SendHalf::send_assigned`]).
pub type Assign<'a> = &'a mut (dyn FnMut() -> u64 + Send);

/// The sending side of a connection run by a carrier's own driver.
pub trait SessionSend: Send + Sync + 'static {
    /// Queues `frame`, waiting for room as `room` says. With `assign`, the
    /// frame's stream id is replaced by `assign()` while the frame is being
    /// queued, so frames leave in the order of their ids; `assign` runs at
    /// most once, and only if the frame is then queued or refused by a
    /// check. Returns the stream id the frame went with.
    ///
    /// # Errors
    /// [`TransportError::Backpressure`] when `room` ran out,
    /// [`TransportError::MessageTooLarge`], the connection's error once it
    /// has ended.
    fn send<'a>(
        &'a self,
        frame: Frame,
        delivery: Delivery,
        room: Room,
        assign: Option<Assign<'a>>,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Measures a round trip to the peer within `within`.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] with [`crate::TimeoutKind::Ping`]; the
    /// connection's error once it has ended.
    fn ping(&self, within: Duration) -> BoxFuture<'_, Result<Duration>>;

    /// The latest round-trip estimate.
    fn rtt(&self) -> Option<Duration>;

    /// The connection's error, once it has ended.
    fn error(&self) -> Option<TransportError>;

    /// Delivers what is queued (within the carrier's own bound), then says
    /// goodbye to the peer. Later sends fail with
    /// [`TransportError::ConnectionClosed`].
    ///
    /// # Errors
    /// The connection's error if it had failed.
    fn close(&self) -> BoxFuture<'_, Result<()>>;
}

/// The receiving side of a connection run by a carrier's own driver.
pub trait SessionRecv: Send + Sync + 'static {
    /// The next frame the peer sent (whole messages; PINGs already
    /// answered by the carrier). Cancel-safe.
    ///
    /// # Errors
    /// Why the connection ended ([`TransportError::ConnectionClosed`] with
    /// `clean` after the peer's goodbye); later calls return the same.
    fn recv(&mut self) -> BoxFuture<'_, Result<Frame>>;
}

impl ConnectionInfo {
    /// What a carrier's own handshake established (for
    /// [`crate::Connection::from_session`]). Such carriers run Noise and do
    /// not compress.
    pub fn for_session(
        peer_key: Option<PublicKey>,
        handshake_hash: [u8; 32],
        negotiated: Capabilities,
        pattern: Pattern,
        cipher: CipherSuite,
        transport: &str,
        initiator: bool,
    ) -> Self {
        Self {
            peer_key,
            handshake_hash: Some(handshake_hash),
            negotiated,
            pattern: Some(pattern),
            cipher: Some(cipher),
            transport: transport.to_owned(),
            initiator,
            compression: Compression::None,
        }
    }
}

/// What the halves of a session connection share.
pub(crate) struct SessionLink {
    pub(crate) send: Arc<dyn SessionSend>,
    /// The lowest `last_stream_id` of the peer's GOAWAYs.
    peer_goaway: Mutex<Option<u64>>,
}

impl SessionLink {
    pub(crate) fn new(send: Arc<dyn SessionSend>) -> Arc<Self> {
        Arc::new(Self {
            send,
            peer_goaway: Mutex::new(None),
        })
    }

    fn goaway_slot(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.peer_goaway
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn peer_goaway(&self) -> Option<u64> {
        *self.goaway_slot()
    }

    /// Notes what a received frame means for the connection (a GOAWAY).
    ///
    /// # Errors
    /// [`TransportError::Wire`] for a malformed GOAWAY.
    pub(crate) fn observe(&self, frame: &Frame) -> Result<()> {
        if frame.kind == FrameKind::GoAway {
            let (last, _) = frame.as_ref().goaway_parts()?;
            let mut slot = self.goaway_slot();
            *slot = Some(slot.map_or(last, |p| p.min(last)));
        }
        Ok(())
    }

    /// Checks and queues an application frame.
    pub(crate) async fn send_frame<'a>(
        &'a self,
        frame: Frame,
        delivery: Delivery,
        room: Room,
        assign: Option<Assign<'a>>,
    ) -> Result<u64> {
        crate::core::check_frame(&frame)?;
        // Datagram sessions negotiate no extensions (yet): the peer would
        // skip the frame.
        if let FrameKind::Extension(kind) = frame.kind {
            return Err(TransportError::InvalidFrame(
                crate::error::InvalidFrame::ExtensionNotNegotiated { kind },
            ));
        }
        self.send.send(frame, delivery, room, assign).await
    }

    /// Encodes `payload` as a DATA frame and queues it.
    pub(crate) async fn send_payload<'a, P: Payload + ?Sized>(
        &'a self,
        stream_id: u64,
        payload: &P,
        delivery: Delivery,
        room: Room,
        assign: Option<Assign<'a>>,
    ) -> Result<u64> {
        let mut body = Vec::new();
        payload
            .encode_payload(&mut body)
            .map_err(TransportError::BadMessage)?;
        let frame = Frame::new(FrameKind::Data, stream_id, Bytes::from(body));
        self.send.send(frame, delivery, room, assign).await
    }
}
