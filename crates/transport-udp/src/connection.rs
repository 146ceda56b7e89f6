//! One session as the application holds it: [`UdpConnection`], the
//! handle its senders share (the last one closes the session, after the
//! queued messages when asked to linger) and its receiving side.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use netproto_transport::TransportError;
use netproto_wire::Frame;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::driver::{ConnEvent, Handle, Route, Shared, State, RESUME_BELOW};
use crate::endpoint::{Delivery, SessionId};
use crate::error::{Result, UdpError};
use crate::session::SessionStats;
use crate::SessionInfo;

/// What the handles of one session share; dropping the last closes the
/// session (a BYE goes to the peer).
pub(crate) struct SessionHandle {
    handle: Handle,
    pub(crate) id: SessionId,
    pub(crate) room: Arc<Notify>,
    /// Why the session ended, once it has.
    pub(crate) ended: Arc<OnceLock<TransportError>>,
    /// How long the last handle's drop lets queued messages be
    /// acknowledged before the BYE (zero: at once).
    pub(crate) linger: Duration,
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let shared = &self.handle.0;
        let lingering =
            !self.linger.is_zero() && shared.lock().endpoint.queued(self.id).unwrap_or(0) > 0;
        if lingering {
            // What is queued goes first, as a stream sends BYE after its
            // queue: the session closes once it is acknowledged, or after
            // `linger`.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let handle = Handle::new(shared);
                let (id, room, linger) = (self.id, self.room.clone(), self.linger);
                runtime.spawn(async move {
                    let shared = &handle.0;
                    let stop = shared.stop.notified();
                    if !shared.stopping.load(Ordering::Acquire) {
                        tokio::select! {
                            _ = tokio::time::timeout(linger, drained(shared, id, &room)) => {}
                            () = stop => {}
                        }
                    }
                    close_now(shared, id);
                });
                return;
            }
        }
        close_now(shared, self.id);
    }
}

/// Ends a session at once (a BYE goes to the peer).
fn close_now(shared: &Shared, id: SessionId) {
    let mut st = shared.lock();
    st.routes.remove(&id);
    st.endpoint.close(Instant::now(), id, "");
    drop(st);
    shared.wake.notify_one();
}

/// Waits until nothing is queued on session `id` (or it is gone).
pub(crate) async fn drained(shared: &Shared, id: SessionId, room: &Notify) {
    loop {
        let wait = room.notified();
        let mut wait = std::pin::pin!(wait);
        wait.as_mut().enable();
        if shared.lock().endpoint.queued(id).unwrap_or(0) == 0 {
            return;
        }
        wait.await;
    }
}

/// What a send waits for.
pub(crate) struct Queued {
    /// The stream id the frame went with.
    pub(crate) stream_id: u64,
    /// With a confirmation asked for: the peer's acknowledgement.
    pub(crate) confirmed: Option<oneshot::Receiver<Result<()>>>,
}

impl SessionHandle {
    pub(crate) fn shared(&self) -> &Shared {
        &self.handle.0
    }

    /// Round-trip time, congestion window and retransmission figures.
    pub(crate) fn stats(&self) -> Option<SessionStats> {
        self.shared().lock().endpoint.session_stats(self.id)
    }

    /// Queues `frame` if there is room; `Ok(None)` if the queue is full.
    /// With `assign`, the stream id is chosen here, under the lock, once
    /// room is certain, so frames are queued in the order of their ids.
    fn try_send(
        &self,
        frame: &mut Frame,
        delivery: Delivery,
        confirm: bool,
        assign: &mut Option<&mut (dyn FnMut() -> u64 + Send)>,
    ) -> Result<Option<Queued>> {
        let mut st = self.shared().lock();
        if assign.is_some() {
            // The id's varint may grow the frame by up to 9 bytes.
            let need = frame.encoded_len() + 9;
            let room = st
                .endpoint
                .room(self.id)
                .ok_or(UdpError::UnknownSession(self.id.0))?;
            let queued = st.endpoint.queued(self.id).unwrap_or(0);
            if room < need && queued > 0 {
                // No room yet: `assign` stays for the next attempt.
                return Ok(None);
            }
        }
        if let Some(assign) = assign.take() {
            frame.stream_id = assign();
        }
        let id = match st.endpoint.send(Instant::now(), self.id, frame, delivery) {
            Ok(id) => id,
            Err(UdpError::SendQueueFull { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let confirmed = confirm.then(|| {
            let (tx, rx) = oneshot::channel();
            if let Some(route) = st.routes.get_mut(&self.id) {
                route.waiters.insert(id, tx);
            }
            rx
        });
        drop(st);
        self.shared().wake.notify_one();
        Ok(Some(Queued {
            stream_id: frame.stream_id,
            confirmed,
        }))
    }

    /// Queues `frame`, waiting for room at most `limit` without progress
    /// (`None`: as long as it takes; `Some(ZERO)`: not at all).
    pub(crate) async fn send(
        &self,
        mut frame: Frame,
        delivery: Delivery,
        confirm: bool,
        limit: Option<Duration>,
        mut assign: Option<&mut (dyn FnMut() -> u64 + Send)>,
    ) -> Result<Queued> {
        loop {
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            if let Some(queued) = self.try_send(&mut frame, delivery, confirm, &mut assign)? {
                return Ok(queued);
            }
            match limit {
                None => room.await,
                Some(limit) if limit.is_zero() => {
                    return Err(self.queue_full());
                }
                Some(limit) => {
                    if tokio::time::timeout(limit, room).await.is_err() {
                        return Err(self.queue_full());
                    }
                }
            }
        }
    }

    fn queue_full(&self) -> UdpError {
        let st = self.shared().lock();
        let queued = st.endpoint.queued(self.id).unwrap_or(0);
        let room = st.endpoint.room(self.id).unwrap_or(0);
        UdpError::SendQueueFull {
            queued,
            limit: queued + room,
        }
    }

    /// Closes the session now, telling the peer why.
    pub(crate) fn close(&self, reason: &str) {
        let mut st = self.shared().lock();
        st.endpoint.close(Instant::now(), self.id, reason);
        drop(st);
        self.shared().wake.notify_one();
    }
}

/// One session, as the application holds it. Dropping it closes the
/// session (a BYE goes to the peer).
pub struct UdpConnection {
    pub(crate) tx: SessionHandle,
    pub(crate) info: Arc<SessionInfo>,
    pub(crate) rx: Receiver,
}

/// The receiving side of a session.
pub(crate) struct Receiver {
    rx: mpsc::UnboundedReceiver<ConnEvent>,
    unread: Arc<AtomicUsize>,
    closed: Option<UdpError>,
    /// The endpoint, to tell when the reader caught up (weak: a reader
    /// keeps nothing alive).
    shared: std::sync::Weak<Shared>,
    id: SessionId,
}

impl std::fmt::Debug for UdpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpConnection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl UdpConnection {
    /// Facts about the session.
    pub fn info(&self) -> &Arc<SessionInfo> {
        &self.info
    }

    /// Round-trip time, congestion window and retransmission figures.
    pub fn stats(&self) -> Option<SessionStats> {
        self.tx.stats()
    }

    /// Queues a frame, waiting while the session's send queue is full.
    /// Reliable frames are retransmitted until acknowledged or their
    /// deadline passes; use [`UdpConnection::send_confirmed`] to learn which.
    ///
    /// # Errors
    /// [`UdpError::MessageTooLarge`], [`UdpError::UnreliableTooLarge`],
    /// [`UdpError::UnknownSession`] once the session ended.
    pub async fn send(&self, frame: &Frame, delivery: Delivery) -> Result<()> {
        self.tx
            .send(frame.clone(), delivery, false, None, None)
            .await
            .map(drop)
    }

    /// Sends a frame reliably and waits until the peer acknowledged all of it.
    ///
    /// # Errors
    /// As [`UdpConnection::send`], plus [`UdpError::DeliveryTimeout`] and
    /// [`UdpError::TooManyAttempts`].
    pub async fn send_confirmed(&self, frame: &Frame) -> Result<()> {
        let queued = self
            .tx
            .send(frame.clone(), Delivery::Reliable, true, None, None)
            .await?;
        match queued.confirmed {
            Some(rx) => rx.await.unwrap_or(Err(UdpError::Closed)),
            None => Ok(()),
        }
    }

    /// The next message (a frame, and whether it came reliably).
    ///
    /// # Errors
    /// Why the session ended: [`UdpError::PeerClosed`],
    /// [`UdpError::IdleTimeout`], [`UdpError::EndpointClosed`], …
    pub async fn recv(&mut self) -> Result<(Frame, bool)> {
        self.rx.recv().await
    }

    /// Closes the session now, telling the peer why.
    pub fn close(&mut self, reason: &str) {
        self.tx.close(reason);
    }
}

impl Receiver {
    pub(crate) async fn recv(&mut self) -> Result<(Frame, bool)> {
        if let Some(e) = &self.closed {
            return Err(repeat(e));
        }
        match self.rx.recv().await {
            Some(ConnEvent::Message(frame, reliable)) => {
                let len = frame.payload.len();
                let before = self.unread.fetch_sub(len, Ordering::AcqRel);
                let after = before.saturating_sub(len);
                if before > RESUME_BELOW && after <= RESUME_BELOW {
                    if let Some(shared) = self.shared.upgrade() {
                        shared.lock().endpoint.set_backlog(self.id, after);
                        shared.wake.notify_one();
                    }
                }
                Ok((frame, reliable))
            }
            Some(ConnEvent::Closed(e)) => {
                let again = repeat(&e);
                self.closed = Some(e);
                Err(again)
            }
            None => Err(UdpError::EndpointClosed),
        }
    }
}

/// The error a closed connection keeps returning.
fn repeat(e: &UdpError) -> UdpError {
    match e {
        UdpError::PeerClosed(r) => UdpError::PeerClosed(r.clone()),
        UdpError::IdleTimeout(d) => UdpError::IdleTimeout(*d),
        UdpError::HandshakeTimeout(d) => UdpError::HandshakeTimeout(*d),
        UdpError::ReadQueueFull(n) => UdpError::ReadQueueFull(*n),
        UdpError::EndpointClosed => UdpError::EndpointClosed,
        _ => UdpError::Closed,
    }
}

/// A connection for session `id`, routed by the driver.
pub(crate) fn new_connection(
    shared: &Arc<Shared>,
    st: &mut State,
    id: SessionId,
    info: Arc<SessionInfo>,
) -> UdpConnection {
    let (tx, rx) = mpsc::unbounded_channel();
    let unread = Arc::new(AtomicUsize::new(0));
    let room = Arc::new(Notify::new());
    let ended = Arc::new(OnceLock::new());
    st.routes.insert(
        id,
        Route {
            tx,
            unread: unread.clone(),
            room: room.clone(),
            ended: ended.clone(),
            waiters: HashMap::new(),
        },
    );
    UdpConnection {
        tx: SessionHandle {
            handle: Handle::new(shared),
            id,
            room,
            ended,
            linger: Duration::ZERO,
        },
        info,
        rx: Receiver {
            rx,
            unread,
            closed: None,
            shared: Arc::downgrade(shared),
            id,
        },
    }
}
