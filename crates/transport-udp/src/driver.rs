//! The tokio driver: one task owns the socket and the [`Endpoint`], and
//! hands out [`UdpConnection`]s. It only moves datagrams, reads the clock
//! and routes events; every protocol rule is in the endpoint.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netproto_crypto::HandshakeConfig;
use netproto_transport::TransportError;
use netproto_wire::Frame;
use tokio::io::ReadBuf;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::connection::new_connection;
use crate::endpoint::{Endpoint, EndpointStats, SessionId, Transmit};
use crate::error::{Result, UdpError};
use crate::session::Event;
use crate::{UdpConfig, UdpConnection};

/// What the driver needs of a socket: tokio's `UdpSocket`, or a wrapper
/// (the tests put a lossy one in between).
pub trait DatagramSocket: Send + Sync + 'static {
    /// Receives one datagram.
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>>;
    /// Sends one datagram.
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>>;
    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl DatagramSocket for tokio::net::UdpSocket {
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        Self::poll_recv_from(self, cx, buf)
    }
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        Self::poll_send_to(self, cx, buf, target)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Self::local_addr(self)
    }
}

/// Bytes of messages a connection's reader has not taken yet, at most.
/// The endpoint is told the figure ([`Endpoint::set_backlog`]), and a
/// session whose reader falls behind stops acknowledging new reliable
/// pieces once it and the pieces held pass the reliable hold (4.5 MiB;
/// twice that for the next ordered message), so the sender slows down.
/// This is the safety net above that (unreliable messages, which are never
/// refused, included): the session is closed with
/// [`UdpError::ReadQueueFull`] (the messages were acknowledged, so
/// dropping one would break exactly-once).
const MAX_UNREAD: usize =
    2 * (crate::RELIABLE_WINDOW + crate::RELIABLE_WINDOW / 8) + crate::RELIABLE_WINDOW;
/// A reader that falls to this many unread bytes tells the endpoint, so a
/// sender slowed by its backlog is acknowledged again.
pub(crate) const RESUME_BELOW: usize = crate::RELIABLE_WINDOW / 2;
/// Datagrams taken from the socket per wake-up, at most.
const RECV_BATCH: usize = 32;
/// Established sessions waiting for `accept`.
const ACCEPT_BACKLOG: usize = 128;

pub(crate) enum ConnEvent {
    Message(Frame, bool),
    Closed(UdpError),
}

pub(crate) struct Route {
    pub(crate) tx: mpsc::UnboundedSender<ConnEvent>,
    pub(crate) unread: Arc<AtomicUsize>,
    pub(crate) room: Arc<Notify>,
    pub(crate) ended: Arc<OnceLock<TransportError>>,
    pub(crate) waiters: HashMap<u64, oneshot::Sender<Result<()>>>,
}

impl Route {
    /// Tells the connection its session ended, and why.
    fn end(&self, error: UdpError) {
        let _ = self.ended.set(crate::carrier::to_transport(&error));
        self.room.notify_waiters();
        let _ = self.tx.send(ConnEvent::Closed(error));
    }
}

pub(crate) struct State {
    pub(crate) endpoint: Endpoint,
    pub(crate) routes: HashMap<SessionId, Route>,
    pub(crate) connecting: HashMap<SessionId, oneshot::Sender<Result<UdpConnection>>>,
    pub(crate) accept: Option<mpsc::Sender<UdpConnection>>,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the driver: something was queued, or a handle went away.
    pub(crate) wake: Notify,
    pub(crate) handles: AtomicUsize,
    pub(crate) local: SocketAddr,
    /// Set when the accepting side shuts down: sessions still delivering
    /// what their last handle queued stop waiting and close.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    pub(crate) stop: Notify,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state behind
        // (every method finishes its changes before it can fail).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts handles so the driver stops when the last one goes.
pub(crate) struct Handle(pub(crate) Arc<Shared>);

impl Handle {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        Self(shared.clone())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.handles.fetch_sub(1, Ordering::AcqRel);
        self.0.wake.notify_one();
    }
}

/// Binds a non-blocking UDP socket with kernel buffers of `buffer` bytes
/// asked for (best effort: the kernel caps them).
fn bind_socket(addr: SocketAddr, buffer: usize) -> io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    for (what, set) in [
        (
            "receive",
            Socket::set_recv_buffer_size as fn(&Socket, usize) -> io::Result<()>,
        ),
        ("send", Socket::set_send_buffer_size),
    ] {
        if let Err(e) = set(&socket, buffer) {
            tracing::debug!(error = %e, buffer, "UDP {what} buffer size refused");
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// A UDP socket serving netproto sessions. See the crate documentation.
pub struct UdpEndpoint {
    handle: Handle,
    incoming: tokio::sync::Mutex<Option<mpsc::Receiver<UdpConnection>>>,
}

impl std::fmt::Debug for UdpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpEndpoint")
            .field("local_addr", &self.handle.0.local)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl UdpEndpoint {
    /// Binds a UDP socket at `addr`; with `accept`, it answers handshakes
    /// (take the sessions with [`UdpEndpoint::accept`]).
    ///
    /// # Errors
    /// [`UdpError::Io`] if the socket does not bind, [`UdpError::Crypto`]
    /// for an `accept` config without a static key.
    // Async as every bind of the workspace (and tokio's) is: binding may
    // block on some platforms, and callers already await it.
    #[allow(clippy::unused_async)]
    pub async fn bind(
        addr: SocketAddr,
        cfg: UdpConfig,
        accept: Option<HandshakeConfig>,
    ) -> Result<Self> {
        let socket = bind_socket(addr, cfg.socket_buffer)?;
        Self::with_socket(socket, cfg, accept)
    }

    /// Serves on a socket of your own (any [`DatagramSocket`]). Must be
    /// called within a tokio runtime.
    ///
    /// # Errors
    /// As [`UdpEndpoint::bind`].
    pub fn with_socket<S: DatagramSocket>(
        socket: S,
        cfg: UdpConfig,
        accept: Option<HandshakeConfig>,
    ) -> Result<Self> {
        let local = socket.local_addr()?;
        let accepting = accept.is_some();
        let endpoint = Endpoint::new(
            cfg,
            accept,
            Box::new(rand::rngs::OsRng),
            Instant::now(),
            unix_now(),
        )?;
        let (accept_tx, accept_rx) = if accepting {
            let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                endpoint,
                routes: HashMap::new(),
                connecting: HashMap::new(),
                accept: accept_tx,
            }),
            wake: Notify::new(),
            handles: AtomicUsize::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            stop: Notify::new(),
            local,
        });
        let handle = Handle::new(&shared);
        tokio::spawn(drive(shared, socket));
        Ok(Self {
            handle,
            incoming: tokio::sync::Mutex::new(accept_rx),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.0.local
    }

    /// Sessions whose last handle is gone stop waiting for their queued
    /// messages to be acknowledged and close now (a server shutting down).
    pub(crate) fn stop_lingering(&self) {
        let shared = &self.handle.0;
        shared.stopping.store(true, Ordering::Release);
        shared.stop.notify_waiters();
    }

    /// Counters of the endpoint.
    pub fn stats(&self) -> EndpointStats {
        self.handle.0.lock().endpoint.stats()
    }

    /// Runs a handshake with `peer`.
    ///
    /// # Errors
    /// [`UdpError::HandshakeTimeout`] when every retransmission went
    /// unanswered, [`UdpError::Crypto`] when the peer failed verification,
    /// [`UdpError::SessionTableFull`].
    pub async fn connect(&self, peer: SocketAddr, cfg: HandshakeConfig) -> Result<UdpConnection> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.handle.0.lock();
            let id = st.endpoint.connect(Instant::now(), peer, cfg)?;
            st.connecting.insert(id, tx);
        }
        self.handle.0.wake.notify_one();
        rx.await.map_err(|_| UdpError::EndpointClosed)?
    }

    /// The next session a peer opened.
    ///
    /// # Errors
    /// [`UdpError::EndpointClosed`] if this endpoint does not accept.
    pub async fn accept(&self) -> Result<UdpConnection> {
        let mut incoming = self.incoming.lock().await;
        let rx = incoming.as_mut().ok_or(UdpError::EndpointClosed)?;
        rx.recv().await.ok_or(UdpError::EndpointClosed)
    }
}

/// Routes the endpoint's events to connections. Connections nobody took
/// land in `unwanted`, to be dropped once the lock is released (dropping
/// one takes the lock).
fn dispatch(shared: &Arc<Shared>, st: &mut State, now: Instant, unwanted: &mut Vec<UdpConnection>) {
    while let Some((id, event)) = st.endpoint.poll_event() {
        match event {
            Event::Connected(info) => {
                let conn = new_connection(shared, st, id, info);
                if let Some(waiter) = st.connecting.remove(&id) {
                    if let Err(Ok(conn)) = waiter.send(Ok(conn)) {
                        unwanted.push(conn);
                    }
                } else if let Some(accept) = &st.accept {
                    if let Err(e) = accept.try_send(conn) {
                        let (mpsc::error::TrySendError::Full(conn)
                        | mpsc::error::TrySendError::Closed(conn)) = e;
                        tracing::warn!(session = %id, "accept backlog full: session closed");
                        unwanted.push(conn);
                    }
                } else {
                    unwanted.push(conn);
                }
            }
            Event::Message { frame, reliable } => {
                let Some(route) = st.routes.get(&id) else {
                    continue;
                };
                let len = frame.payload.len();
                let unread = route.unread.fetch_add(len, Ordering::AcqRel) + len;
                if unread > MAX_UNREAD {
                    route.end(UdpError::ReadQueueFull(MAX_UNREAD));
                    st.routes.remove(&id);
                    st.endpoint.close(now, id, "receiver not reading");
                    continue;
                }
                let _ = route.tx.send(ConnEvent::Message(frame, reliable));
                // Read afresh: the reader may have taken some meanwhile.
                let unread = route.unread.load(Ordering::Acquire);
                st.endpoint.set_backlog(id, unread);
            }
            Event::Delivered(message) => {
                if let Some(route) = st.routes.get_mut(&id) {
                    route.room.notify_waiters();
                    if let Some(w) = route.waiters.remove(&message) {
                        let _ = w.send(Ok(()));
                    }
                }
            }
            Event::Failed { message, error } => {
                if let Some(route) = st.routes.get_mut(&id) {
                    route.room.notify_waiters();
                    if let Some(w) = route.waiters.remove(&message) {
                        let _ = w.send(Err(error));
                    }
                }
            }
            Event::Closed(error) => {
                if let Some(waiter) = st.connecting.remove(&id) {
                    let _ = waiter.send(Err(error));
                } else if let Some(route) = st.routes.remove(&id) {
                    route.end(error);
                }
            }
        }
    }
}

/// Ends every connection when the driver stops, however it stops (a
/// panic included), so no caller waits forever on a dead endpoint.
struct Farewell(Arc<Shared>);

impl Drop for Farewell {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        for (_, route) in st.routes.drain() {
            route.end(UdpError::EndpointClosed);
        }
        for (_, waiter) in st.connecting.drain() {
            let _ = waiter.send(Err(UdpError::EndpointClosed));
        }
        st.accept = None;
    }
}

/// Sends what the endpoint has until the socket pushes back; returns the
/// datagram it would not take, and whether anything left.
fn flush<S: DatagramSocket>(
    socket: &S,
    st: &mut State,
    now: Instant,
    mut unsent: Option<Transmit>,
) -> (Option<Transmit>, bool) {
    let mut sent = false;
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    while let Some(t) = unsent.take().or_else(|| st.endpoint.poll_transmit(now)) {
        match socket.poll_send_to(&mut cx, &t.contents, t.destination) {
            Poll::Ready(Ok(_)) => sent = true,
            // A datagram that cannot be sent (unreachable, too big) is
            // lost, which the protocol already handles.
            Poll::Ready(Err(e)) => {
                tracing::debug!(to = %t.destination, error = %e, "send failed");
            }
            Poll::Pending => return (Some(t), sent),
        }
    }
    (None, sent)
}

/// The driver task.
async fn drive<S: DatagramSocket>(shared: Arc<Shared>, socket: S) {
    let _farewell = Farewell(shared.clone());
    let mut buf = vec![0u8; UdpConfig::MAX_DATAGRAM];
    let mut unsent: Option<Transmit> = None;
    let mut unwanted = Vec::new();
    loop {
        unwanted.clear();
        if shared.handles.load(Ordering::Acquire) == 0 {
            // The last handle queued its BYE: send it before leaving.
            let mut st = shared.lock();
            let _ = flush(&socket, &mut st, Instant::now(), unsent.take());
            return;
        }
        let timeout = {
            let mut st = shared.lock();
            let now = Instant::now();
            if st.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                st.endpoint.handle_timeout(now);
            }
            dispatch(&shared, &mut st, now, &mut unwanted);
            let (left, sent) = flush(&socket, &mut st, now, unsent.take());
            unsent = left;
            if sent {
                // Queues shrank: wake senders waiting for room (unreliable
                // messages leave the queue without an event).
                for route in st.routes.values() {
                    route.room.notify_waiters();
                }
            }
            dispatch(&shared, &mut st, now, &mut unwanted);
            // While the socket pushes back, due timers wait for it too:
            // what they would send could not go out anyway.
            if unsent.is_some() {
                None
            } else {
                st.endpoint.poll_timeout()
            }
        };
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let writable = async {
            if let Some(t) = &unsent {
                poll_fn(|cx| socket.poll_send_to(cx, &t.contents, t.destination))
                    .await
                    .ok();
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = poll_fn(|cx| {
                let mut rb = ReadBuf::new(&mut buf);
                socket.poll_recv_from(cx, &mut rb).map(|r| r.map(|from| (from, rb.filled().len())))
            }) => {
                if let Ok((from, n)) = r {
                    let mut st = shared.lock();
                    let now = Instant::now();
                    st.endpoint.handle_datagram(now, from, &mut buf[..n]);
                    // Under load more are waiting: take them under the same
                    // lock, a bounded batch so timers and sends get their turn.
                    let mut cx = Context::from_waker(std::task::Waker::noop());
                    let mut drained = false;
                    for _ in 1..RECV_BATCH {
                        let mut rb = ReadBuf::new(&mut buf);
                        let Poll::Ready(Ok(from)) = socket.poll_recv_from(&mut cx, &mut rb) else {
                            drained = true;
                            break;
                        };
                        let n = rb.filled().len();
                        st.endpoint.handle_datagram(now, from, &mut buf[..n]);
                    }
                    // The burst is over: acknowledge now.
                    if drained {
                        st.endpoint.flush_acks(now);
                    }
                }
            }
            () = writable => { unsent = None; }
            () = shared.wake.notified() => {}
            () = sleep => {}
        }
    }
}
