//! UDP as a carrier of the service: [`UdpListener`] accepts sessions as
//! [`netproto_transport::Connection`]s, [`UdpDialer`] dials `udp://`
//! endpoints, so `Server`, `Client` and the pool run over UDP unchanged.
//!
//! Requests, responses and one-way messages go *ordered* (reliable and in
//! the order sent, as on a stream), so a GOAWAY splits requests exactly;
//! [`SendHalf::send_as`](netproto_transport::SendHalf::send_as) picks
//! reliable-unordered or unreliable delivery per message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::HandshakeConfig;
use netproto_transport::session::{Assign, Room, SessionRecv, SessionSend};
use netproto_transport::{
    Accept, BoxFuture, CarrierFailure, Connection, ConnectionConfig, ConnectionInfo, Dial,
    Endpoint, Incoming, PeerAddr, TimeoutKind, TransportError,
};
use netproto_wire::{Frame, FrameKind};
use tokio::sync::OnceCell;

use crate::connection::{drained, Receiver, SessionHandle};
use crate::endpoint::Delivery;
use crate::{UdpConfig, UdpConnection, UdpEndpoint, UdpError};

/// The same failure in the transport's terms (what the service sees).
pub(crate) fn to_transport(e: &UdpError) -> TransportError {
    let carrier = |reason| TransportError::Carrier {
        carrier: "udp",
        reason,
        detail: e.to_string(),
    };
    match e {
        UdpError::Crypto(c) => TransportError::Crypto(c.clone()),
        UdpError::Wire(w) => TransportError::Wire(w.clone()),
        UdpError::Record(_) => carrier(CarrierFailure::BadRecord),
        UdpError::HandshakeTimeout(after) => TransportError::Timeout {
            kind: TimeoutKind::Handshake,
            after: *after,
        },
        UdpError::DeliveryTimeout { after, .. } => TransportError::Timeout {
            kind: TimeoutKind::Delivery,
            after: *after,
        },
        UdpError::TooManyAttempts { .. } | UdpError::OrderBroken(_) => {
            carrier(CarrierFailure::Undelivered)
        }
        UdpError::MessageTooLarge { len, max } => TransportError::MessageTooLarge {
            len: *len,
            max: *max,
        },
        UdpError::UnreliableTooLarge { .. } => carrier(CarrierFailure::TooManyPieces),
        UdpError::SendQueueFull { .. } => TransportError::Backpressure,
        UdpError::SessionTableFull(_) => carrier(CarrierFailure::SessionTableFull),
        UdpError::ReadQueueFull(_) => carrier(CarrierFailure::ReadQueueFull),
        UdpError::IdleTimeout(after) => TransportError::Timeout {
            kind: TimeoutKind::ReadIdle,
            after: *after,
        },
        UdpError::PeerClosed(_) | UdpError::Closed => {
            TransportError::ConnectionClosed { clean: true }
        }
        UdpError::UnknownSession(_) | UdpError::EndpointClosed => {
            TransportError::ConnectionClosed { clean: false }
        }
        UdpError::Io(io) => TransportError::Io {
            kind: io.kind(),
            message: io.to_string(),
        },
    }
}

impl From<UdpError> for TransportError {
    fn from(e: UdpError) -> Self {
        to_transport(&e)
    }
}

/// The transport's delivery choice in the endpoint's terms.
fn delivery(d: netproto_transport::Delivery) -> Delivery {
    match d {
        netproto_transport::Delivery::Reliable => Delivery::Reliable,
        netproto_transport::Delivery::Unreliable => Delivery::Unreliable,
        _ => Delivery::Ordered,
    }
}

/// The sending side of a session, as a connection uses it.
struct UdpSend {
    handle: SessionHandle,
    /// How long `close` waits for queued messages to be acknowledged.
    linger: Duration,
}

impl UdpSend {
    /// The session's end, or `e` in the transport's terms.
    fn failure(&self, e: &UdpError) -> TransportError {
        match (e, self.handle.ended.get()) {
            (UdpError::UnknownSession(_), Some(ended)) => ended.clone(),
            _ => to_transport(e),
        }
    }
}

impl SessionSend for UdpSend {
    fn send<'a>(
        &'a self,
        frame: Frame,
        how: netproto_transport::Delivery,
        room: Room,
        assign: Option<Assign<'a>>,
    ) -> BoxFuture<'a, netproto_transport::Result<u64>> {
        Box::pin(async move {
            if let Some(ended) = self.handle.ended.get() {
                return Err(ended.clone());
            }
            let limit = match room {
                Room::Wait => None,
                Room::WaitAtMost(limit) => Some(limit),
                _ => Some(Duration::ZERO),
            };
            self.handle
                .send(frame, delivery(how), false, limit, assign)
                .await
                .map(|q| q.stream_id)
                .map_err(|e| self.failure(&e))
        })
    }

    fn ping(&self, within: Duration) -> BoxFuture<'_, netproto_transport::Result<Duration>> {
        Box::pin(async move {
            let start = Instant::now();
            let timed_out = || TransportError::Timeout {
                kind: TimeoutKind::Ping,
                after: within,
            };
            let ping = Frame::new(FrameKind::Ping, 0, bytes::Bytes::new());
            let round_trip = async {
                let queued = self
                    .handle
                    .send(ping, Delivery::Reliable, true, Some(within), None)
                    .await
                    .map_err(|e| self.failure(&e))?;
                if let Some(acked) = queued.confirmed {
                    match acked.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(self.failure(&e)),
                        Err(_) => return Err(self.failure(&UdpError::Closed)),
                    }
                }
                Ok(start.elapsed())
            };
            tokio::time::timeout(within, round_trip)
                .await
                .map_err(|_| timed_out())?
        })
    }

    fn rtt(&self) -> Option<Duration> {
        self.handle.stats().and_then(|s| s.srtt)
    }

    fn error(&self) -> Option<TransportError> {
        self.handle.ended.get().cloned()
    }

    fn close(&self) -> BoxFuture<'_, netproto_transport::Result<()>> {
        Box::pin(async move {
            if let Some(ended) = self.handle.ended.get() {
                return match ended {
                    TransportError::ConnectionClosed { clean: true } => Ok(()),
                    other => Err(other.clone()),
                };
            }
            // Sends from now on are refused; what is queued goes first:
            // wait (bounded) until the peer has acknowledged it, as a stream
            // flushes before its BYE.
            let _ = self
                .handle
                .ended
                .set(TransportError::ConnectionClosed { clean: true });
            let drained = drained(self.handle.shared(), self.handle.id, &self.handle.room);
            let _ = tokio::time::timeout(self.linger, drained).await;
            self.handle.close("");
            Ok(())
        })
    }
}

/// The receiving side of a session, as a connection uses it.
struct UdpRecv(Receiver);

impl SessionRecv for UdpRecv {
    fn recv(&mut self) -> BoxFuture<'_, netproto_transport::Result<Frame>> {
        Box::pin(async move {
            self.0
                .recv()
                .await
                .map(|(frame, _)| frame)
                .map_err(|e| to_transport(&e))
        })
    }
}

impl UdpConnection {
    /// This session as a [`Connection`], the handle `Server`, `Client`
    /// and the pool use. `close` waits up to `linger` for queued messages
    /// to be acknowledged before its BYE.
    pub fn into_connection(self, linger: Duration) -> Connection {
        let info = &self.info;
        let info = ConnectionInfo::for_session(
            info.peer_key,
            info.handshake_hash,
            info.negotiated,
            info.pattern,
            netproto_crypto::CipherSuite::ChaChaPoly,
            "udp",
            info.initiator,
        );
        // The connection's sending handles are the session's only owners:
        // when the last goes, queued messages get `linger` to be
        // acknowledged, then the BYE.
        let mut handle = self.tx;
        handle.linger = linger;
        Connection::from_session(
            info,
            Arc::new(UdpSend { handle, linger }),
            Box::new(UdpRecv(self.rx)),
        )
    }
}

/// The first address `host:port` resolves to.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, TransportError> {
    let mut addrs = tokio::net::lookup_host((host, port)).await?;
    addrs.next().ok_or_else(|| TransportError::BadEndpoint {
        input: format!("udp://{host}:{port}"),
        reason: "the host name resolves to no address",
    })
}

fn not_udp(endpoint: &Endpoint) -> TransportError {
    TransportError::BadEndpoint {
        input: endpoint.to_string(),
        reason: "the UDP carrier opens udp:// endpoints only",
    }
}

/// Accepts UDP sessions for the service (`Server::with_listener`). The
/// handshakes run in the endpoint (with its cookies and rate limits)
/// before a session is accepted.
#[derive(Debug)]
pub struct UdpListener {
    endpoint: UdpEndpoint,
    local: Endpoint,
    linger: Duration,
}

impl UdpListener {
    /// Binds `endpoint` (`udp://host:port`; port 0 picks one) and answers
    /// handshakes with `handshake` (which needs our static key).
    ///
    /// # Errors
    /// [`TransportError::BadEndpoint`] for another scheme or a name that
    /// does not resolve; I/O errors if the socket does not bind;
    /// [`TransportError::Crypto`] without a static key.
    pub async fn bind(
        endpoint: &Endpoint,
        cfg: UdpConfig,
        mut handshake: HandshakeConfig,
    ) -> Result<Self, TransportError> {
        let Endpoint::Udp { host, port } = endpoint else {
            return Err(not_udp(endpoint));
        };
        let addr = resolve(host, *port).await?;
        handshake.transport = "udp".into();
        let linger = cfg.retransmit.deadline;
        let udp = UdpEndpoint::bind(addr, cfg, Some(handshake)).await?;
        Ok(Self::new(udp, linger))
    }

    /// Accepts the sessions of an endpoint of your own (one made with
    /// [`UdpEndpoint::with_socket`] and an `accept` configuration); `close`
    /// waits up to `linger` for queued messages to be acknowledged.
    pub fn new(endpoint: UdpEndpoint, linger: Duration) -> Self {
        let bound = endpoint.local_addr();
        Self {
            local: Endpoint::Udp {
                host: bound.ip().to_string(),
                port: bound.port(),
            },
            endpoint,
            linger,
        }
    }

    /// The endpoint underneath (its counters, [`UdpEndpoint::stats`]).
    pub fn endpoint(&self) -> &UdpEndpoint {
        &self.endpoint
    }
}

impl Drop for UdpListener {
    /// The server is done with this endpoint: sessions still delivering
    /// what they queued close now, so the socket is released promptly.
    fn drop(&mut self) {
        self.endpoint.stop_lingering();
    }
}

impl Accept for UdpListener {
    fn accept(&mut self) -> BoxFuture<'_, netproto_transport::Result<Incoming>> {
        Box::pin(async move {
            let conn = self.endpoint.accept().await?;
            let peer = PeerAddr::Udp(conn.info().peer_addr);
            let linger = self.linger;
            Ok(Incoming::new(peer, move |_cfg| {
                Box::pin(async move { Ok(conn.into_connection(linger)) })
            }))
        })
    }

    fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }
}

/// Dials `udp://` endpoints for the service: set it as
/// [`ConnectionConfig::dialer`]. Every session it opens shares one socket
/// per address family, bound on first use.
#[derive(Debug)]
pub struct UdpDialer {
    cfg: UdpConfig,
    v4: OnceCell<UdpEndpoint>,
    v6: OnceCell<UdpEndpoint>,
}

impl UdpDialer {
    /// A dialer whose sessions follow `cfg`.
    pub fn new(cfg: UdpConfig) -> Self {
        Self {
            cfg,
            v4: OnceCell::new(),
            v6: OnceCell::new(),
        }
    }

    async fn socket_for(&self, peer: SocketAddr) -> Result<&UdpEndpoint, UdpError> {
        let (cell, any): (_, SocketAddr) = if peer.is_ipv4() {
            (&self.v4, (std::net::Ipv4Addr::UNSPECIFIED, 0).into())
        } else {
            (&self.v6, (std::net::Ipv6Addr::UNSPECIFIED, 0).into())
        };
        cell.get_or_try_init(|| UdpEndpoint::bind(any, self.cfg.clone(), None))
            .await
    }
}

impl Default for UdpDialer {
    fn default() -> Self {
        Self::new(UdpConfig::default())
    }
}

impl Dial for UdpDialer {
    fn dial<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        cfg: ConnectionConfig,
    ) -> BoxFuture<'a, netproto_transport::Result<Connection>> {
        Box::pin(async move {
            let Endpoint::Udp { host, port } = endpoint else {
                return Err(not_udp(endpoint));
            };
            let resolve = tokio::time::timeout(cfg.connect_timeout, resolve(host, *port));
            let peer = resolve.await.map_err(|_| TransportError::Timeout {
                kind: TimeoutKind::Connect,
                after: cfg.connect_timeout,
            })??;
            let socket = self.socket_for(peer).await?;
            let mut handshake = cfg.handshake;
            handshake.transport = "udp".into();
            // The endpoint retransmits the handshake within its own
            // deadline; the connection's handshake timeout bounds it too.
            let connect = socket.connect(peer, handshake);
            let conn = tokio::time::timeout(cfg.handshake_timeout, connect)
                .await
                .map_err(|_| TransportError::Timeout {
                    kind: TimeoutKind::Handshake,
                    after: cfg.handshake_timeout,
                })??;
            Ok(conn.into_connection(self.cfg.retransmit.deadline))
        })
    }
}
