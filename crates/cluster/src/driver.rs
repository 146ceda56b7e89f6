//! The tokio driver: one task owns the socket and the [`Node`]; the
//! [`Cluster`] handle talks to it through a channel.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use netproto_crypto::Keypair;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{ClusterConfig, ClusterError, ClusterEvent, ClusterStats, Member, MemberId, Node};

/// Datagrams read per wake-up before timers run again.
const RECV_BATCH: usize = 32;
/// Events a slow subscriber may fall behind by before it misses some
/// (it then gets `RecvError::Lagged` with the count).
const EVENT_CAPACITY: usize = 4096;
/// How long at most [`Cluster::leave`] keeps the node running so its
/// goodbye reaches every member (handshakes and retransmissions included);
/// it returns as soon as all have acknowledged it. A fixed 500 ms was too
/// short on a loaded 2-vCPU machine: 32 nodes, some members still
/// handshaking, reported the leaver as down instead of left.
const LEAVE_GRACE: Duration = Duration::from_secs(3);

enum Command {
    Members(oneshot::Sender<Vec<Member>>),
    Stats(oneshot::Sender<ClusterStats>),
    SendTo(MemberId, Bytes, oneshot::Sender<Result<(), ClusterError>>),
    Broadcast(Bytes, oneshot::Sender<Result<(), ClusterError>>),
    Leave(oneshot::Sender<()>),
}

/// A running cluster node (see [`Node`] for the protocol). Dropping the
/// handle stops the node without a goodbye; call [`Cluster::leave`] first
/// to leave cleanly.
#[derive(Debug)]
pub struct Cluster {
    id: MemberId,
    local_addr: SocketAddr,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<ClusterEvent>,
    task: JoinHandle<()>,
}

impl Cluster {
    /// Binds `bind`, and joins through `seeds` (none: this node starts a
    /// cluster others join). Members reach this node at
    /// `advertise`, or at the bound address when that is a specific one.
    ///
    /// # Errors
    /// [`ClusterError::Io`] if the socket cannot be bound,
    /// [`ClusterError::Config`] for a bad setting or a wildcard bind without
    /// an address to advertise.
    pub async fn join(
        cfg: ClusterConfig,
        key: Keypair,
        bind: SocketAddr,
        advertise: Option<SocketAddr>,
        seeds: &[SocketAddr],
    ) -> Result<Self, ClusterError> {
        let socket = UdpSocket::bind(bind).await?;
        let local_addr = socket.local_addr()?;
        let addr = match advertise {
            Some(a) => a,
            None if local_addr.ip().is_unspecified() => {
                return Err(ClusterError::Config {
                    field: "advertise",
                    reason: format!(
                        "bound to {local_addr}; members need a specific address to reach this node"
                    ),
                })
            }
            None => local_addr,
        };
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now = Instant::now();
        let mut node = Node::new(cfg, key, addr, Box::new(rand::rngs::OsRng), now, wall)?;
        node.join(now, seeds)?;
        let id = node.id();
        let (commands, rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let task = tokio::spawn(run(node, socket, rx, events.clone()));
        Ok(Self {
            id,
            local_addr,
            commands,
            events,
            task,
        })
    }

    /// This node's identity as it joined (a rejoin after being declared
    /// down raises the generation: see [`ClusterEvent::Renewed`]).
    pub const fn id(&self) -> MemberId {
        self.id
    }

    /// The bound socket address.
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Membership changes, broadcasts and messages from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClusterError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ClusterError::Stopped)?;
        rx.await.map_err(|_| ClusterError::Stopped)
    }

    /// Every member this node knows of, with state and when it was last
    /// heard from.
    ///
    /// # Errors
    /// [`ClusterError::Stopped`] once the node has stopped.
    pub async fn members(&self) -> Result<Vec<Member>, ClusterError> {
        self.ask(Command::Members).await
    }

    /// What the node counted.
    ///
    /// # Errors
    /// [`ClusterError::Stopped`] once the node has stopped.
    pub async fn stats(&self) -> Result<ClusterStats, ClusterError> {
        self.ask(Command::Stats).await
    }

    /// Sends a reliable message to one member ([`Node::send_to`]).
    ///
    /// # Errors
    /// As [`Node::send_to`], or [`ClusterError::Stopped`].
    pub async fn send_to(&self, to: &MemberId, payload: Bytes) -> Result<(), ClusterError> {
        self.ask(|tx| Command::SendTo(*to, payload, tx)).await?
    }

    /// Sends `payload` to every member ([`Node::broadcast`]).
    ///
    /// # Errors
    /// As [`Node::broadcast`], or [`ClusterError::Stopped`].
    pub async fn broadcast(&self, payload: Bytes) -> Result<(), ClusterError> {
        self.ask(|tx| Command::Broadcast(payload, tx)).await?
    }

    /// Leaves the cluster cleanly and stops the node (members report
    /// [`ClusterEvent::Left`]). Returns once every member acknowledged the
    /// goodbye, or after 3 s at most.
    pub async fn leave(mut self) {
        let _ = self.ask(Command::Leave).await;
        let _ = (&mut self.task).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    mut node: Node,
    socket: UdpSocket,
    mut commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<ClusterEvent>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut stop_at: Option<Instant> = None;
    let mut leaving: Option<oneshot::Sender<()>> = None;
    loop {
        let now = Instant::now();
        while let Some(t) = node.poll_transmit(now) {
            if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                tracing::debug!(to = %t.destination, error = %e, "cluster datagram not sent");
            }
        }
        while let Some(ev) = node.poll_event() {
            // No subscriber is not an error: events are there to be taken.
            let _ = events.send(ev);
        }
        // Leaving: stop once every member acknowledged the LEAVE, or at
        // the bound.
        if stop_at.is_some_and(|t| t <= now || node.leave_settled()) {
            if let Some(done) = leaving.take() {
                let _ = done.send(());
            }
            return;
        }
        let deadline = [node.poll_timeout(), stop_at].into_iter().flatten().min();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    let now = Instant::now();
                    node.handle_datagram(now, from, &mut buf[..n]);
                    for _ in 1..RECV_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => node.handle_datagram(now, from, &mut buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                // ICMP port unreachable and the like: the session layer
                // copes with loss, nothing to do here.
                Err(e) => tracing::debug!(error = %e, "cluster socket receive"),
            },
            () = sleep => node.handle_timeout(Instant::now()),
            command = commands.recv() => {
                let now = Instant::now();
                match command {
                    Some(Command::Members(tx)) => { let _ = tx.send(node.members()); }
                    Some(Command::Stats(tx)) => { let _ = tx.send(node.stats().clone()); }
                    Some(Command::SendTo(to, payload, tx)) => { let _ = tx.send(node.send_to(now, &to, payload)); }
                    Some(Command::Broadcast(payload, tx)) => { let _ = tx.send(node.broadcast(now, &payload)); }
                    Some(Command::Leave(tx)) => {
                        node.leave(now);
                        leaving = Some(tx);
                        stop_at = Some(now + LEAVE_GRACE);
                    }
                    None => return,
                }
            }
        }
    }
}
