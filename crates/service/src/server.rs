//! The server daemon: accept loop, per-connection tasks, heartbeat,
//! backpressure, graceful shutdown.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use netproto_transport::{
    Accept, AnyListener, BudgetShare, Connection, Endpoint, Flush, Incoming, MemoryBudget,
    PeerAddr, SocketOptions, TimeoutKind, TransportError,
};
use netproto_wire::{ErrorCode, Frame, FrameKind, Message};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::admission::{Admission, Ticket};

/// Most "server busy" answers being said at once; beyond it, surplus
/// authenticated connections are closed without one.
const MAX_CONCURRENT_REFUSALS: usize = 64;
use crate::config::ServerConfig;
use crate::dispatcher::{Dispatcher, HandlerFuture, Routed};
use crate::error::{HandlerError, Result};
use crate::log_limit::LogLimit;
use crate::payload::Encoded;

/// A bound server. Call [`Server::run`] to serve. It serves anything that
/// accepts connections ([`Accept`]; every byte-stream `Listener` is one):
/// [`Server::bind`] uses the built-in TCP / Unix-socket listener,
/// [`Server::with_listener`] takes another (TLS, UDP, …).
pub struct Server<L: Accept = AnyListener> {
    listener: L,
    cfg: Arc<ServerConfig>,
    dispatcher: Arc<Dispatcher>,
    handle: ServerHandle,
}

impl<L: Accept> std::fmt::Debug for Server<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", self.listener.local_endpoint())
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

/// Controls a running server from anywhere (cheap to clone).
#[derive(Clone, Debug)]
pub struct ServerHandle {
    token: CancellationToken,
    grace: Arc<Mutex<Option<Duration>>>,
    open: Arc<AtomicUsize>,
    endpoint: Endpoint,
}

impl ServerHandle {
    /// Starts a graceful shutdown: stop accepting, send GOAWAY to every
    /// connection, let in-flight requests finish within `grace` (default: the
    /// configured `shutdown_timeout`), then close what is left. [`Server::run`]
    /// returns once every connection task has ended.
    pub fn shutdown(&self, grace: Option<Duration>) {
        if let Ok(mut g) = self.grace.lock() {
            *g = grace;
        }
        self.token.cancel();
    }

    /// Connections currently being served.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Where the server listens (with the real port if 0 was configured).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Server<AnyListener> {
    /// Binds the configured address.
    ///
    /// # Errors
    /// [`crate::ServiceError::Transport`] if the address cannot be bound.
    pub async fn bind(cfg: ServerConfig, dispatcher: Dispatcher) -> Result<Self> {
        let listener = AnyListener::bind(&cfg.address, SocketOptions::default()).await?;
        Ok(Self::with_listener(listener, cfg, dispatcher))
    }
}

impl<L: Accept> Server<L> {
    /// Serves connections from an already bound listener (`cfg.address` is
    /// not used).
    pub fn with_listener(listener: L, cfg: ServerConfig, dispatcher: Dispatcher) -> Self {
        let endpoint = listener.local_endpoint().clone();
        let mut cfg = cfg;
        // Liveness is the connection core's: a keep-alive PING after
        // `heartbeat_interval` of silence, closed `connection_timeout` later.
        cfg.connection = cfg
            .connection
            .for_endpoint(&endpoint)
            .with_heartbeat(cfg.heartbeat_interval, cfg.connection_timeout);
        // One reassembly budget for all connections: what anonymous peers
        // can make the server hold in unfinished messages is bounded in
        // total, not per connection.
        if cfg.connection.reassembly_budget.is_none() {
            cfg.connection.reassembly_budget =
                Some(Arc::new(MemoryBudget::new(cfg.max_reassembly_bytes)));
        }
        // Likewise for answers queued to slow readers (a large answer
        // reserves twice its size while it is encoded: a budget smaller
        // than that would stall the largest answers for good).
        // The dispatcher's extensions are advertised in every handshake.
        if let Err(e) = dispatcher
            .extension_handlers()
            .declare(&mut cfg.connection.extensions)
        {
            tracing::error!(error = %e, "extension handlers conflict with the connection's extensions; the connection's are kept");
        }
        if cfg.connection.send_budget.is_none() {
            let limit = cfg
                .max_send_bytes
                .max(cfg.connection.max_message_size.saturating_mul(2));
            cfg.connection.send_budget = Some(Arc::new(MemoryBudget::new(limit)));
        }
        Self {
            listener,
            cfg: Arc::new(cfg),
            dispatcher: Arc::new(dispatcher),
            handle: ServerHandle {
                token: CancellationToken::new(),
                grace: Arc::new(Mutex::new(None)),
                open: Arc::new(AtomicUsize::new(0)),
                endpoint,
            },
        }
    }

    /// A handle to shut the server down or watch it.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Where it listens.
    pub fn local_endpoint(&self) -> &Endpoint {
        self.listener.local_endpoint()
    }

    /// Serves until [`ServerHandle::shutdown`]; returns when every connection
    /// task has ended.
    ///
    /// # Errors
    /// None today; accept errors are logged and retried.
    pub async fn run(mut self) -> Result<()> {
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(self.cfg.max_connections));
        let refusals = Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS));
        // Handshakes have a budget of their own (and each source a share and
        // a rate): a peer holds a connection slot only once authenticated.
        let admission = Admission::new(&self.cfg);
        // Requests being handled, all connections together.
        let requests = Arc::new(MemoryBudget::new(self.cfg.max_request_bytes));
        tracing::info!(endpoint = %self.handle.endpoint, "server listening");
        loop {
            let accepted = tokio::select! {
                () = self.handle.token.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let incoming = match accepted {
                Ok(a) => a,
                Err(e) => {
                    if let Some(folded) = ACCEPT_FAILED.admit(std::time::Instant::now()) {
                        tracing::warn!(error = %e, folded, "accept failed");
                    }
                    metrics::counter!("netproto_accept_errors_total").increment(1);
                    // Out of file descriptors and the like: back off briefly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let peer = incoming.peer().clone();
            let ticket = match admission.admit(&peer, Instant::now()) {
                Ok(t) => t,
                Err(why) => {
                    // Dropped before any cryptographic work; counted, and
                    // logged at debug only (a flood must not flood the log).
                    metrics::counter!("netproto_handshakes_refused_total", "reason" => why.label())
                        .increment(1);
                    tracing::debug!(peer = %peer, reason = why.label(), "refused before the handshake");
                    continue;
                }
            };
            metrics::counter!("netproto_connections_accepted_total").increment(1);
            let conn = ConnectionTask {
                cfg: self.cfg.clone(),
                dispatcher: self.dispatcher.clone(),
                handle: self.handle.clone(),
                requests: requests.clone(),
            };
            let span = tracing::info_span!(
                "connection",
                peer = %peer,
                // Several listeners may be served as one: a UDP peer says so.
                transport = match &peer {
                    PeerAddr::Udp(_) => "udp",
                    _ => self.handle.endpoint.transport_label(),
                },
                peer_key = tracing::field::Empty,
            );
            let (slots, refusals) = (slots.clone(), refusals.clone());
            tracker.spawn(
                conn.serve(incoming, peer, ticket, slots, refusals)
                    .instrument(span),
            );
        }
        drop(self.listener);
        tracing::info!("server stopped accepting; draining connections");
        tracker.close();
        tracker.wait().await;
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Says "busy" on an authenticated connection (so a client can tell
/// "busy" from an attack) and closes it.
async fn refuse_busy(conn: Connection) {
    let refuse = async {
        let _ = conn
            .send_frame(Frame::error(0, ErrorCode::BUSY, "server busy"))
            .await;
        let _ = conn.close().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), refuse).await;
}

struct ConnectionTask {
    cfg: Arc<ServerConfig>,
    dispatcher: Arc<Dispatcher>,
    handle: ServerHandle,
    /// Bytes of requests being handled, shared by all connections.
    requests: Arc<MemoryBudget>,
}

/// What each connection's requests may hold before they draw on the
/// server's request budget (small requests never wait on a budget that
/// large ones spent).
const REQUEST_FLOOR: usize = 64 * 1024;

/// A request's bytes, held against its connection's share of the request
/// budget until its answer is queued (dropped then).
struct Held {
    share: Arc<Mutex<BudgetShare>>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.share).release(self.bytes);
    }
}

fn lock(share: &Mutex<BudgetShare>) -> std::sync::MutexGuard<'_, BudgetShare> {
    share
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Repeated warnings, each written at most once a second (`log_limit`).
static ACCEPT_FAILED: LogLimit = LogLimit::new();
static BUSY: LogLimit = LogLimit::new();
static CONNECTION_FAILED: LogLimit = LogLimit::new();
static REQUEST_REFUSED: LogLimit = LogLimit::new();

/// Why a connection's read loop ended.
enum End {
    Shutdown,
    Peer(TransportError),
}

impl ConnectionTask {
    async fn serve(
        self,
        incoming: Incoming,
        peer: PeerAddr,
        ticket: Ticket,
        slots: Arc<Semaphore>,
        refusals: Arc<Semaphore>,
    ) {
        // Shutdown does not wait for handshakes in progress; a newer
        // handshake from the same source may take this one's place.
        let established = tokio::select! {
            biased;
            () = self.handle.token.cancelled() => return,
            why = ticket.preempted() => {
                metrics::counter!("netproto_handshakes_preempted_total", "share" => why.label())
                    .increment(1);
                tracing::debug!(%peer, share = why.label(), "handshake preempted by a newer one");
                return;
            }
            c = incoming.establish(self.cfg.connection.clone()) => c,
        };
        drop(ticket);
        let conn = match established {
            Ok(c) => {
                metrics::counter!("netproto_handshakes_total", "outcome" => "ok").increment(1);
                c
            }
            Err(e) => {
                metrics::counter!("netproto_handshakes_total", "outcome" => "failed").increment(1);
                // Counted above; one line per failure, at debug (a
                // handshake flood must not flood the log).
                tracing::debug!(error = %e, "handshake failed");
                return;
            }
        };
        let Ok(_slot) = slots.try_acquire_owned() else {
            metrics::counter!("netproto_connections_rejected_total").increment(1);
            if let Some(folded) = BUSY.admit(std::time::Instant::now()) {
                tracing::warn!(
                    %peer,
                    limit = self.cfg.max_connections,
                    folded,
                    "server busy: refusing connection"
                );
            }
            // At most this many refusals are said at once; beyond, the
            // connection is just closed.
            if let Ok(_saying) = refusals.try_acquire_owned() {
                refuse_busy(conn).await;
            }
            return;
        };
        let fingerprint = conn.info().peer_key.map(|k| k.fingerprint());
        tracing::info!(
            peer_key = fingerprint.as_deref().unwrap_or("anonymous"),
            "connection established"
        );
        self.handle.open.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("netproto_connections_open").increment(1.0);
        self.run(conn).await;
        self.handle.open.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("netproto_connections_open").decrement(1.0);
        tracing::info!(%peer, "connection ended");
    }

    async fn run(&self, conn: Connection) {
        let (send, mut recv) = conn.split();
        let inflight = Arc::new(Semaphore::new(self.cfg.backpressure_limit.max(1)));
        let share = Arc::new(Mutex::new(BudgetShare::new(
            self.requests.clone(),
            REQUEST_FLOOR,
        )));
        let mut tasks = JoinSet::new();
        let mut last_stream = 0u64;
        let token = self.handle.token.clone();
        let end = loop {
            // With `backpressure_bytes` of requests in flight we stop
            // reading until one finishes, as below for their count.
            if lock(&share).held() >= self.cfg.backpressure_bytes && !tasks.is_empty() {
                tokio::select! {
                    biased;
                    () = token.cancelled() => break End::Shutdown,
                    _ = tasks.join_next() => continue,
                }
            }
            // With `backpressure_limit` requests in flight no permit is free:
            // we stop reading and TCP pushes back on the client.
            let permit = tokio::select! {
                biased;
                () = token.cancelled() => break End::Shutdown,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                p = inflight.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break End::Shutdown,
                },
            };
            // A silent peer ends here too: the connection core pings it after
            // `heartbeat_interval` and fails the read `connection_timeout`
            // later.
            let frame = tokio::select! {
                biased;
                () = token.cancelled() => break End::Shutdown,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                f = recv.recv_frame() => match f {
                    Ok(f) => f,
                    Err(e) => break End::Peer(e),
                },
            };
            if let FrameKind::Extension(_) = frame.kind {
                // Only negotiated extensions get here (the core skips the
                // others); the answer, if any, may wait for room.
                drop(permit);
                if let Some(reply) = self.dispatcher.extension_handlers().handle(frame) {
                    if let Err(e) = send.send_frame(reply).await {
                        tracing::debug!(error = %e, "extension answer not sent");
                    }
                }
                continue;
            }
            if frame.kind != FrameKind::Data {
                // PONG, ACK, GOAWAY, ERR from a client: liveness only.
                continue;
            }
            last_stream = last_stream.max(frame.stream_id);
            let bytes = frame.payload.len();
            metrics::counter!("netproto_bytes_in_total").increment(bytes as u64);
            let span = tracing::debug_span!("request", stream_id = frame.stream_id);
            // The request's bytes are held until its answer is queued; one
            // that does not fit the server's request budget is not handled.
            if !lock(&share).try_hold(bytes) {
                drop(permit);
                refuse_request(&send, frame.stream_id, bytes).await;
                continue;
            }
            let held = Held {
                share: share.clone(),
                bytes,
            };
            let (request, routed) = span.in_scope(|| begin_request(&self.dispatcher, frame));
            match routed {
                // Answered already (sync handler, bad request, unknown
                // opcode): reply from here, no task.
                Routed::Done(outcome) => {
                    drop(permit);
                    // Nothing else to answer yet: this answer leaves from
                    // here, now; while requests wait, answers batch.
                    let flush = if recv.has_buffered_input() {
                        Flush::Batch
                    } else {
                        Flush::Now
                    };
                    // The answer may wait for room in the write queue (a
                    // client that does not read); shutdown must not.
                    tokio::select! {
                        biased;
                        () = token.cancelled() => break End::Shutdown,
                        () = finish_request(&send, request, outcome, flush).instrument(span) => {}
                    }
                    drop(held);
                }
                Routed::Pending(fut) => {
                    // Made before the task, so that a task aborted before
                    // it first ran still answers (see `Unanswered`).
                    let mut pending = Unanswered {
                        send: send.clone(),
                        stream_id: request.stream_id,
                        armed: true,
                        shutdown: token.clone(),
                    };
                    tasks.spawn(
                        async move {
                            let _permit = permit;
                            let _held = held;
                            let outcome = run_handler(&request, fut).await;
                            pending.armed = false;
                            finish_request(&pending.send, request, outcome, Flush::Batch).await;
                        }
                        .instrument(span),
                    );
                }
            }
        };
        self.end(end, &send, tasks, last_stream).await;
    }

    /// Drains or abandons what is in flight, as the way the connection ended
    /// calls for.
    async fn end(
        &self,
        end: End,
        send: &netproto_transport::SendHalf,
        mut tasks: JoinSet<()>,
        last_stream: u64,
    ) {
        match end {
            End::Shutdown => {
                let grace = self
                    .handle
                    .grace
                    .lock()
                    .ok()
                    .and_then(|g| *g)
                    .unwrap_or(self.cfg.shutdown_timeout);
                let _ = send.goaway(last_stream, "shutting down");
                let drained = tokio::time::timeout(grace, async {
                    while tasks.join_next().await.is_some() {}
                })
                .await;
                if drained.is_err() {
                    tracing::warn!(
                        remaining = tasks.len(),
                        "shutdown deadline passed; abandoning requests"
                    );
                    tasks.abort_all();
                    // Aborted tasks end at their next await; dropping
                    // them queues their SHUTTING_DOWN answers, which must
                    // go out before our BYE. A handler that blocks its
                    // thread never reaches an await: bounded.
                    let drained = async { while tasks.join_next().await.is_some() {} };
                    let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), send.close()).await;
            }
            End::Peer(TransportError::Timeout {
                kind: TimeoutKind::ReadIdle,
                ..
            }) => {
                tracing::info!("closing silent connection (no answer to the keep-alive)");
                metrics::counter!("netproto_heartbeat_closed_total").increment(1);
                tasks.abort_all();
            }
            End::Peer(TransportError::ConnectionClosed { clean: true }) => {
                tasks.abort_all();
            }
            End::Peer(e) => {
                // The one line for this connection's end (the transport
                // logs it at debug); `folded`: failures not written since
                // the last line.
                if let Some(folded) = CONNECTION_FAILED.admit(std::time::Instant::now()) {
                    tracing::warn!(error = %e, folded, "connection failed");
                }
                metrics::counter!("netproto_connections_failed_total").increment(1);
                tasks.abort_all();
            }
        }
    }
}

/// A request whose handler has not finished; dropped unfinished while the
/// server shuts down (its task aborted when the grace period passed), it
/// answers ERR SHUTTING_DOWN so the caller learns it was not served; the
/// answer goes out before the BYE that follows. A request dropped because
/// its client left (BYE) or its connection failed is not answered.
struct Unanswered {
    send: netproto_transport::SendHalf,
    stream_id: u64,
    /// Cleared once the handler has finished (its own answer follows).
    armed: bool,
    shutdown: CancellationToken,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.armed && self.stream_id != 0 && self.shutdown.is_cancelled() {
            let _ = self.send.try_send_frame(Frame::error(
                self.stream_id,
                ErrorCode::SHUTTING_DOWN,
                "abandoned at the shutdown deadline",
            ));
        }
    }
}

/// What is known of a request once it is decoded and routed.
struct Request {
    stream_id: u64,
    opcode: String,
    started: Instant,
}

/// Answers a request the request budget has no room for: ERR BUSY on its
/// stream (a one-way message is dropped), counted and logged at most once a
/// second.
async fn refuse_request(send: &netproto_transport::SendHalf, stream_id: u64, bytes: usize) {
    metrics::counter!("netproto_requests_refused_total", "reason" => "memory").increment(1);
    if let Some(folded) = REQUEST_REFUSED.admit(std::time::Instant::now()) {
        tracing::warn!(
            bytes,
            folded,
            "server busy: requests in progress hold the request budget"
        );
    }
    if stream_id != 0 {
        let reason = "server busy: too many request bytes in progress; retry later";
        let _ = send_error(
            send,
            Frame::error(stream_id, ErrorCode::BUSY, reason),
            Flush::Batch,
        )
        .await;
    }
}

/// Decodes and routes one request; synchronous handlers run right here
/// (their panics caught and answered with ERR INTERNAL). The frame is
/// dropped once decoded: its bytes are not held twice while the request is
/// handled.
fn begin_request(dispatcher: &Dispatcher, frame: Frame) -> (Request, Routed) {
    let stream_id = frame.stream_id;
    let started = Instant::now();
    let decoded = Message::decode(&frame.payload);
    drop(frame);
    let (opcode, work) = match decoded {
        Err(e) => (
            "invalid".to_owned(),
            Routed::Done(Err(HandlerError::bad_request(format!(
                "request does not decode: {e}"
            )))),
        ),
        Ok(msg) => {
            let opcode = if dispatcher.handles(msg.opcode()) {
                msg.opcode().to_owned()
            } else {
                "unknown".to_owned()
            };
            let routed =
                std::panic::catch_unwind(AssertUnwindSafe(|| dispatcher.route_message(msg)))
                    .unwrap_or_else(|_| {
                        tracing::error!(opcode, stream_id, "handler panicked");
                        Routed::Done(Err(HandlerError::internal("handler panicked")))
                    });
            (opcode, routed)
        }
    };
    (
        Request {
            stream_id,
            opcode,
            started,
        },
        work,
    )
}

/// Awaits an async handler (catching its panics).
async fn run_handler(request: &Request, fut: HandlerFuture) -> Result<Message, HandlerError> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(
                opcode = request.opcode,
                stream_id = request.stream_id,
                "handler panicked"
            );
            Err(HandlerError::internal("handler panicked"))
        })
}

/// Records and answers one request.
async fn finish_request(
    send: &netproto_transport::SendHalf,
    request: Request,
    outcome: Result<Message, HandlerError>,
    flush: Flush,
) {
    let Request {
        stream_id,
        opcode,
        started,
    } = request;
    let label = if outcome.is_ok() { "ok" } else { "error" };
    let elapsed = started.elapsed();
    tracing::debug!(
        opcode,
        stream_id,
        outcome = label,
        elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    metrics::counter!("netproto_requests_total", "opcode" => opcode, "outcome" => label)
        .increment(1);
    metrics::histogram!("netproto_request_duration_seconds").record(elapsed.as_secs_f64());
    if stream_id == 0 {
        // One-way message: nobody waits for an answer.
        return;
    }
    let sent = match outcome {
        Ok(resp) => {
            if let Ok(n) = resp.encoded_len() {
                metrics::counter!("netproto_bytes_out_total").increment(n as u64);
            }
            match send.send_with(stream_id, &Encoded(&resp), flush).await {
                // The reply does not fit the client's advertised limit: the
                // request is answered all the same, with why.
                Err(TransportError::MessageTooLarge { len, max }) => {
                    metrics::counter!("netproto_replies_too_large_total").increment(1);
                    let reason =
                        format!("reply of {len} bytes exceeds the message limit of {max} bytes");
                    send_error(
                        send,
                        Frame::error(stream_id, ErrorCode::TOO_LARGE, &reason),
                        flush,
                    )
                    .await
                }
                other => other,
            }
        }
        Err(e) => {
            let reason = crate::error::bounded_reason(&e.reason);
            send_error(send, Frame::error(stream_id, e.code, reason), flush).await
        }
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, stream_id, "response not sent");
    }
}

/// Queues an ERR answer and, with [`Flush::Now`], writes it from here if
/// the writer has not taken it yet (ERR answers are rare: the frame path
/// has no `Flush` of its own, so the writer is also woken).
async fn send_error(
    send: &netproto_transport::SendHalf,
    frame: Frame,
    flush: Flush,
) -> Result<(), TransportError> {
    send.send_frame(frame).await?;
    if flush == Flush::Now {
        send.write_now();
    }
    Ok(())
}
