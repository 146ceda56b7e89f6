//! The client: one secure connection at a time, many concurrent calls
//! multiplexed by request id, statistics, GOAWAY handling and automatic
//! reconnect. Liveness (keep-alive PING, idle deadline) is the connection
//! core's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use netproto_transport::{Delivery, Endpoint, Flush, Priority, SendHalf, TransportError};
use netproto_wire::{ErrorCode, FrameKind, Message};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ClientConfig;
use crate::error::{Result, ServiceError};
use crate::extension::ExtensionHandlers;
use crate::payload::Encoded;
use crate::reconnect::backoff;

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Message>>>>;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    responses: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    late_responses: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    rtt_ewma_ns: AtomicU64,
    reconnects: AtomicU64,
}

/// A snapshot of a client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Calls and one-way sends made.
    pub requests: u64,
    /// Responses delivered to a waiting call.
    pub responses: u64,
    /// Calls that ended in an error (including timeouts).
    pub errors: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Responses that arrived after their call had timed out (dropped).
    pub late_responses: u64,
    /// Encoded request bytes.
    pub bytes_sent: u64,
    /// Response payload bytes.
    pub bytes_received: u64,
    /// Smoothed round-trip time of calls (exponential moving average).
    pub rtt_estimate: Duration,
    /// Successful reconnections.
    pub reconnects: u64,
}

/// One live connection: its sending half, its pending calls, its reader.
struct Link {
    send: SendHalf,
    pending: Pending,
    closed: OnceLock<ServiceError>,
    /// The server sent GOAWAY: requests above this id will not be served,
    /// and new calls go to a new connection.
    goaway: OnceLock<u64>,
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Ok(mut r) = self.reader.lock() {
            if let Some(task) = r.take() {
                task.abort();
            }
        }
    }
}

impl Link {
    async fn open(
        endpoint: &Endpoint,
        cfg: &ClientConfig,
        counters: &Arc<Counters>,
    ) -> Result<Arc<Self>> {
        let mut conn_cfg = cfg
            .connection
            .clone()
            .with_heartbeat(cfg.heartbeat_interval, cfg.connection_timeout);
        conn_cfg.connect_timeout = cfg.connection_timeout;
        conn_cfg.handshake_timeout = cfg.connection_timeout;
        cfg.extensions.declare(&mut conn_cfg.extensions)?;
        let conn = netproto_transport::connect(endpoint, conn_cfg).await?;
        let (send, recv) = conn.split();
        let link = Arc::new(Self {
            send,
            pending: Mutex::new(HashMap::new()),
            closed: OnceLock::new(),
            goaway: OnceLock::new(),
            reader: Mutex::new(None),
        });
        let task = tokio::spawn(read_loop(
            Arc::downgrade(&link),
            recv,
            counters.clone(),
            cfg.extensions.clone(),
        ));
        if let Ok(mut r) = link.reader.lock() {
            *r = Some(task);
        }
        Ok(link)
    }

    fn closed_error(&self) -> Option<ServiceError> {
        self.closed.get().cloned()
    }

    /// Why no new call may start on this connection, if none may.
    fn unusable(&self) -> Option<ServiceError> {
        self.closed_error()
            .or_else(|| self.goaway.get().map(|_| ServiceError::GoingAway))
    }

    /// Fails, with [`ServiceError::GoingAway`], every pending call the
    /// server said it will not serve.
    fn refuse_above(&self, last: u64) {
        let refused: Vec<_> = self
            .pending
            .lock()
            .map(|mut p| {
                let ids: Vec<u64> = p.keys().copied().filter(|id| *id > last).collect();
                ids.into_iter().filter_map(|id| p.remove(&id)).collect()
            })
            .unwrap_or_default();
        for tx in refused {
            let _ = tx.send(Err(ServiceError::GoingAway));
        }
    }
}

pub(crate) struct Inner {
    endpoint: Endpoint,
    pub(crate) cfg: ClientConfig,
    /// One permit per call in flight (`ClientConfig::max_in_flight`).
    pub(crate) in_flight: Arc<Semaphore>,
    link: Mutex<Arc<Link>>,
    /// Held by the one task that is reconnecting; others wait on it.
    reconnecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    counters: Arc<Counters>,
}

/// A client of a netproto server. Cheap to clone; clones share the connection.
///
/// With `auto_reconnect` (the default), a call that finds the connection dead
/// reconnects first (full handshake, the server key verified again) with
/// exponential backoff and jitter, within the call's response timeout. Calls
/// in flight on a connection that dies fail with
/// [`ServiceError::ConnectionClosed`]; they are re-sent only through
/// [`Client::call_idempotent`].
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects and runs the handshake within `connection_timeout`.
    ///
    /// # Errors
    /// [`ServiceError::Transport`] (refused, timed out, handshake failed).
    pub async fn connect(endpoint: &Endpoint, cfg: ClientConfig) -> Result<Self> {
        let counters = Arc::new(Counters::default());
        let link = Link::open(endpoint, &cfg, &counters).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: endpoint.clone(),
                in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
                cfg,
                link: Mutex::new(link),
                reconnecting: tokio::sync::Mutex::new(()),
                next_id: AtomicU64::new(1),
                counters,
            }),
        })
    }

    fn current(&self) -> Option<Arc<Link>> {
        self.inner.link.lock().ok().map(|l| l.clone())
    }

    /// The live connection, reconnecting first if it died and
    /// `auto_reconnect` is on.
    async fn live_link(&self) -> Result<Arc<Link>> {
        let link = self.current().ok_or(ServiceError::ConnectionClosed)?;
        let Some(dead) = link.unusable() else {
            return Ok(link);
        };
        if !self.inner.cfg.auto_reconnect {
            return Err(dead);
        }
        let _only_one = self.inner.reconnecting.lock().await;
        // Someone else may have reconnected while we waited.
        if let Some(l) = self.current() {
            if l.unusable().is_none() {
                return Ok(l);
            }
        }
        let cfg = &self.inner.cfg;
        // A server that said GOAWAY is reached again at once (nothing
        // failed); a dead connection waits out the backoff first.
        let immediate = dead == ServiceError::GoingAway;
        let mut last = dead;
        for attempt in 0..cfg.max_reconnect_attempts {
            if !(immediate && attempt == 0) {
                tokio::time::sleep(backoff(
                    cfg.reconnect_delay,
                    attempt,
                    cfg.max_reconnect_delay,
                ))
                .await;
            }
            tracing::info!(endpoint = %self.inner.endpoint, attempt = attempt + 1, "reconnecting");
            match Link::open(&self.inner.endpoint, cfg, &self.inner.counters).await {
                Ok(link) => {
                    if let Ok(mut l) = self.inner.link.lock() {
                        *l = link.clone();
                    }
                    self.inner
                        .counters
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("netproto_client_reconnects_total").increment(1);
                    return Ok(link);
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt = attempt + 1, "reconnect failed");
                    last = e;
                }
            }
        }
        Err(ServiceError::ReconnectFailed {
            attempts: cfg.max_reconnect_attempts,
            last: Box::new(last),
        })
    }

    /// Sends `request` and waits for its response. Connecting again (if the
    /// connection had died) counts against the response timeout.
    ///
    /// # Errors
    /// [`ServiceError::Remote`] if the server answered with ERR (unknown
    /// opcode, bad request, handler failure); [`ServiceError::Timeout`];
    /// [`ServiceError::ConnectionClosed`] if the connection died with the call
    /// in flight; [`ServiceError::ReconnectFailed`]; [`ServiceError::Busy`].
    pub async fn call(&self, request: Message) -> Result<Message> {
        self.call_holding(request, None, Priority::default()).await
    }

    /// As [`Client::call`], with the request sent at `priority`: a request
    /// larger than a piece (16 KiB) leaves in pieces, and the pieces of a
    /// more urgent one go first, so an urgent call overtakes a bulk upload
    /// on the same connection ([`Priority`]; the server sends the answer at
    /// its default priority, in the order answers are ready).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_at(&self, request: Message, priority: Priority) -> Result<Message> {
        self.call_holding(request, None, priority).await
    }

    /// [`Client::call`] with its in-flight permit taken already (by
    /// [`crate::ClientService::poll_ready`]), or taken here.
    pub(crate) async fn call_holding(
        &self,
        request: Message,
        permit: Option<OwnedSemaphorePermit>,
        priority: Priority,
    ) -> Result<Message> {
        let c = &self.inner.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.bytes_sent
            .fetch_add(request.encoded_len().unwrap_or(0) as u64, Ordering::Relaxed);
        let started = Instant::now();
        let wait = self.inner.cfg.response_timeout;
        let attempt = async {
            // A call waits for a free place (`max_in_flight`) within its
            // response timeout; uncontended this is one atomic operation.
            let _permit = match permit {
                Some(p) => p,
                None => match self.inner.in_flight.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => self
                        .inner
                        .in_flight
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| ServiceError::ConnectionClosed)?,
                },
            };
            match self.call_once(&request, priority).await {
                // The server did not process it (GOAWAY): safe to send again
                // on a new connection.
                Err(ServiceError::GoingAway) if self.inner.cfg.auto_reconnect => {
                    self.call_once(&request, priority).await
                }
                other => other,
            }
        };
        let result = if let Ok(r) = tokio::time::timeout(wait, attempt).await {
            r
        } else {
            c.timeouts.fetch_add(1, Ordering::Relaxed);
            Err(ServiceError::Timeout(wait))
        };
        if result.is_err() {
            c.errors.fetch_add(1, Ordering::Relaxed);
        } else {
            let sample = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let old = c.rtt_ewma_ns.load(Ordering::Relaxed);
            let new = if old == 0 {
                sample
            } else {
                old - old / 8 + sample / 8
            };
            c.rtt_ewma_ns.store(new, Ordering::Relaxed);
        }
        result
    }

    /// As [`Client::call`], but a request whose connection died before the
    /// answer is sent once more on a new connection. Only for requests that
    /// are safe to run twice.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_idempotent(&self, request: Message) -> Result<Message> {
        match self.call(request.clone()).await {
            Err(ServiceError::ConnectionClosed | ServiceError::Transport(_)) => {
                self.call(request).await
            }
            other => other,
        }
    }

    async fn call_once(&self, request: &Message, priority: Priority) -> Result<Message> {
        let link = self.live_link().await?;
        let (tx, mut rx) = oneshot::channel();
        // The id is taken, and the call registered, at the moment the
        // request is queued: small requests leave in id order, so the
        // server's GOAWAY splits them exactly into served and not served
        // (a large one overtaken mid-flight is retried: see `read_loop`).
        let mut waiter = Some(tx);
        let assigned = AtomicU64::new(0);
        let mut assign = || {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            if let (Some(tx), Ok(mut p)) = (waiter.take(), link.pending.lock()) {
                p.insert(id, tx);
            }
            assigned.store(id, Ordering::Relaxed);
            id
        };
        let op = self.inner.cfg.operation_timeout;
        // The only call in flight leaves from this task, now (one task hop
        // less, issue #23); concurrent calls batch in the writer.
        let flush = if link.pending.lock().is_ok_and(|p| p.is_empty()) {
            Flush::Now
        } else {
            Flush::Batch
        };
        let sent = link
            .send
            .send_assigned_at(&mut assign, &Encoded(request), op, flush, priority)
            .await;
        // Removes the entry however this call ends (error, timeout, drop), so
        // a late answer finds nobody and is counted instead of misdelivered.
        let id = assigned.load(Ordering::Relaxed);
        let _cleanup = (id != 0).then_some(PendingGuard { link: &link, id });
        match sent {
            Ok(_) => {}
            Err(TransportError::Backpressure) => return Err(ServiceError::Timeout(op)),
            Err(e) => return Err(e.into()),
        }
        // GOAWAY, or the end of the connection (a BUSY refusal), may have
        // come after `live_link` looked: the reader fails the calls it finds
        // pending, this one checks for itself.
        if link.goaway.get().is_some_and(|last| id > *last) {
            return Err(ServiceError::GoingAway);
        }
        if let Some(e) = link.closed_error() {
            // The answer may have come in just before the end.
            return rx.try_recv().unwrap_or(Err(e));
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(link
                .closed_error()
                .unwrap_or(ServiceError::ConnectionClosed)),
        }
    }

    /// Sends `message` without waiting for an answer (request id 0), as
    /// [`ClientConfig::send_delivery`] says.
    ///
    /// # Errors
    /// The connection's error once it is closed and cannot be re-established.
    pub async fn send(&self, message: Message) -> Result<()> {
        self.send_as(message, self.inner.cfg.send_delivery).await
    }

    /// Sends `message` without waiting for an answer, reliably or not where
    /// the carrier can lose datagrams (UDP; streams deliver everything).
    ///
    /// # Errors
    /// As [`Client::send`]; over UDP also a message too large to go
    /// unreliably ([`netproto_transport::CarrierFailure::TooManyPieces`]).
    pub async fn send_as(&self, message: Message, delivery: Delivery) -> Result<()> {
        let link = self.live_link().await?;
        self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        Ok(link.send.send_as(0, &Encoded(&message), delivery).await?)
    }

    /// Sends an extension frame (or any frame the server's connection
    /// expects) on the current connection, reconnecting first if needed.
    ///
    /// # Errors
    /// [`ServiceError::Transport`] with
    /// [`netproto_transport::InvalidFrame::ExtensionNotNegotiated`] if this
    /// client did not register the frame's extension
    /// ([`ClientConfig::extension`]) or the server did not advertise it (the
    /// connection goes on); otherwise as [`Client::send`].
    pub async fn send_extension(&self, frame: netproto_wire::Frame) -> Result<()> {
        let link = self.live_link().await?;
        Ok(link.send.send_frame(frame).await?)
    }

    /// Measures a round trip on the current connection with a transport
    /// PING (answered by the server's connection core, whatever routes it
    /// registered). Does not reconnect.
    ///
    /// # Errors
    /// [`ServiceError::Transport`] with a ping timeout, or the connection's
    /// error if it has ended.
    pub async fn ping(&self, within: Duration) -> Result<Duration> {
        let link = self.current().ok_or(ServiceError::ConnectionClosed)?;
        if let Some(e) = link.unusable() {
            return Err(e);
        }
        Ok(link.send.ping(within).await?)
    }

    /// Closes the connection gracefully (BYE after everything queued).
    ///
    /// # Errors
    /// The connection's error if it had already failed.
    pub async fn close(&self) -> Result<()> {
        let link = self.current().ok_or(ServiceError::ConnectionClosed)?;
        Ok(link.send.close().await?)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            responses: c.responses.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            late_responses: c.late_responses.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            rtt_estimate: Duration::from_nanos(c.rtt_ewma_ns.load(Ordering::Relaxed)),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Whether the current connection has ended or is going away (a later
    /// call may reconnect).
    pub fn is_closed(&self) -> bool {
        self.current().is_none_or(|l| l.unusable().is_some())
    }
}

struct PendingGuard<'a> {
    link: &'a Link,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.link.pending.lock() {
            p.remove(&self.id);
        }
    }
}

/// Routes responses to their calls, honours GOAWAY, and fails every pending
/// call when the connection ends.
async fn read_loop(
    link: std::sync::Weak<Link>,
    mut recv: netproto_transport::RecvHalf,
    counters: Arc<Counters>,
    extensions: ExtensionHandlers,
) {
    let end = loop {
        let frame = recv.recv_frame().await;
        let Some(l) = link.upgrade() else { return };
        let frame = match frame {
            Ok(f) => f,
            // After GOAWAY, a server answers every request it took (its
            // answer or SHUTTING_DOWN) before its BYE: a call still
            // waiting was not taken — a large request still arriving in
            // pieces when a later, smaller one overtook it — and may go
            // again on a new connection.
            Err(TransportError::ConnectionClosed { clean: true }) if l.goaway.get().is_some() => {
                break ServiceError::GoingAway
            }
            Err(TransportError::ConnectionClosed { .. }) => break ServiceError::ConnectionClosed,
            Err(e) => break ServiceError::Transport(e),
        };
        let id = frame.stream_id;
        let outcome = match frame.kind {
            FrameKind::Data => {
                counters
                    .bytes_received
                    .fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
                Message::decode(&frame.payload).map_err(ServiceError::from)
            }
            FrameKind::Err => {
                let (code, reason) = match frame.as_ref().error_parts() {
                    Ok((c, r)) => (c, r.unwrap_or("").to_owned()),
                    Err(_) => (ErrorCode::PROTOCOL, "malformed ERR frame".to_owned()),
                };
                if id == 0 {
                    let e = if code == ErrorCode::BUSY {
                        ServiceError::Busy
                    } else {
                        ServiceError::Remote { code, reason }
                    };
                    tracing::warn!(error = %e, "server refused the connection");
                    break e;
                }
                Err(ServiceError::Remote { code, reason })
            }
            FrameKind::GoAway => {
                if let Some(last) = l.send.peer_goaway() {
                    tracing::info!(last_stream_id = last, "server is going away");
                    metrics::counter!("netproto_client_goaway_total").increment(1);
                    let _ = l.goaway.set(last);
                    l.refuse_above(last);
                }
                continue;
            }
            FrameKind::Extension(_) => {
                // Only negotiated extensions get here. The reader never
                // waits for room: an answer that does not fit is dropped.
                if let Some(reply) = extensions.handle(frame) {
                    if let Err(e) = l.send.try_send_frame(reply) {
                        tracing::debug!(error = %e, "extension answer not sent");
                    }
                }
                continue;
            }
            // PONG, ACK: nothing to route.
            _ => continue,
        };
        let waiter = l.pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(tx) = waiter {
            counters.responses.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(outcome);
        } else {
            counters.late_responses.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(stream_id = id, "dropping response to a call that timed out");
        }
    };
    if let Some(l) = link.upgrade() {
        let _ = l.closed.set(end.clone());
        let waiters: Vec<_> = l
            .pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default();
        for (_, tx) in waiters {
            let _ = tx.send(Err(end.clone()));
        }
    }
}
