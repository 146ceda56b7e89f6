//! Two or more sans-IO UDP endpoints on a [`SimLink`], in virtual time.
//!
//! Test setup: a fixture that cannot be built stops the test at once, with
//! the reason.
#![allow(clippy::panic, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pattern, Pinned};
use netproto_transport_udp::{Endpoint, Event, SessionId, UdpConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::sim::{LinkFaults, SimLink};

/// Unix time every simulation starts at (IK timestamps).
const WALL: Duration = Duration::from_secs(1_700_000_000);

/// Endpoints on a simulated link. Node 0 is created by [`SimNet::new`] as
/// the server (it accepts); [`SimNet::add_client`] adds connecting nodes.
#[derive(Debug)]
pub struct SimNet {
    /// The link between all nodes.
    pub link: SimLink,
    /// Virtual time.
    pub now: Instant,
    /// The endpoints; `nodes[i]` listens at `addr(i)`.
    pub nodes: Vec<Endpoint>,
    /// Every event each node reported, in order.
    pub events: Vec<Vec<(SessionId, Event)>>,
    /// The server's static key.
    pub server_key: Keypair,
    seed: u64,
}

/// The address of node `i`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], u16::try_from(1000 + i).unwrap_or(u16::MAX)))
}

impl SimNet {
    /// A server (node 0, accepting any client key) on a link with `faults`,
    /// all randomness from `seed`.
    pub fn new(seed: u64, faults: LinkFaults, cfg: UdpConfig) -> Self {
        Self::with_pattern(seed, faults, cfg, Pattern::XX)
    }

    /// As [`SimNet::new`], the server answering `pattern` (both sides of a
    /// handshake must use the same one: it is bound into the prologue).
    pub fn with_pattern(seed: u64, faults: LinkFaults, cfg: UdpConfig, pattern: Pattern) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let server_key = Keypair::generate(&mut rng);
        let now = Instant::now();
        let accept =
            HandshakeConfig::new(Some(server_key.clone()), Arc::new(AnyPeer)).with_pattern(pattern);
        let server = Endpoint::new(cfg, Some(accept), Box::new(rng), now, WALL)
            .unwrap_or_else(|e| panic!("server endpoint: {e}"));
        Self {
            link: SimLink::new(seed, faults),
            now,
            nodes: vec![server],
            events: vec![Vec::new()],
            server_key,
            seed,
        }
    }

    /// Adds a client node; returns its index.
    pub fn add_client(&mut self, cfg: UdpConfig) -> usize {
        let i = self.nodes.len();
        let rng = StdRng::seed_from_u64(self.seed ^ (i as u64) << 32);
        let node = Endpoint::new(cfg, None, Box::new(rng), self.now, WALL)
            .unwrap_or_else(|e| panic!("client endpoint: {e}"));
        self.nodes.push(node);
        self.events.push(Vec::new());
        i
    }

    /// A client handshake config for `pattern` that pins the server key.
    pub fn client_config(&self, pattern: Pattern) -> HandshakeConfig {
        let mut rng = StdRng::seed_from_u64(self.seed.wrapping_add(7));
        let key = (pattern != Pattern::NK).then(|| Keypair::generate(&mut rng));
        let cfg = HandshakeConfig::new(key, Arc::new(Pinned(*self.server_key.public())))
            .with_pattern(pattern);
        if pattern == Pattern::XX {
            cfg
        } else {
            cfg.with_remote_key(*self.server_key.public())
        }
    }

    /// Node `client` connects to the server.
    pub fn connect(&mut self, client: usize, cfg: HandshakeConfig) -> SessionId {
        self.nodes[client]
            .connect(self.now, addr(0), cfg)
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// Moves every pending datagram onto the link and every arrived one to
    /// its node, and collects events; no time passes.
    pub fn flush(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(t) = self.nodes[i].poll_transmit(self.now) {
                    self.link
                        .send(self.now, addr(i), t.destination, &t.contents);
                    moved = true;
                }
            }
            while let Some(mut d) = self.link.deliver(self.now) {
                if let Some(i) = (0..self.nodes.len()).find(|&i| addr(i) == d.to) {
                    self.nodes[i].handle_datagram(self.now, d.from, &mut d.bytes);
                }
                moved = true;
            }
            for (i, node) in self.nodes.iter_mut().enumerate() {
                while let Some(e) = node.poll_event() {
                    self.events[i].push(e);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The next moment something happens: a datagram lands or a timer fires.
    pub fn next_time(&self) -> Option<Instant> {
        let timers = self.nodes.iter().filter_map(Endpoint::poll_timeout);
        timers.chain(self.link.next_arrival()).min()
    }

    /// Advances to the next moment (at most `until`); false when nothing
    /// is left to happen before `until`.
    pub fn step(&mut self, until: Instant) -> bool {
        self.flush();
        let Some(next) = self.next_time().filter(|t| *t <= until) else {
            self.now = self.now.max(until);
            return false;
        };
        self.now = self.now.max(next);
        for node in &mut self.nodes {
            if node.poll_timeout().is_some_and(|t| t <= self.now) {
                node.handle_timeout(self.now);
            }
        }
        self.flush();
        true
    }

    /// Runs until `done` holds (true) or `limit` of virtual time passes (false).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let until = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if !self.step(until) && done(self) {
                return true;
            }
            if self.now >= until {
                return done(self);
            }
        }
    }

    /// Runs for `span` of virtual time.
    pub fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        while self.step(until) {}
    }

    /// Takes node `i`'s events so far.
    pub fn take_events(&mut self, i: usize) -> Vec<(SessionId, Event)> {
        std::mem::take(&mut self.events[i])
    }
}

/// A real UDP socket that drops a share of the datagrams it sends,
/// deterministically for a seed.
#[derive(Debug)]
pub struct LossySocket {
    inner: tokio::net::UdpSocket,
    rng: std::sync::Mutex<StdRng>,
    loss: f64,
}

impl LossySocket {
    /// Binds 127.0.0.1:0 and drops `loss` (0.0–1.0) of what is sent.
    ///
    /// # Errors
    /// If the socket does not bind.
    pub async fn bind(loss: f64, seed: u64) -> std::io::Result<Self> {
        Ok(Self {
            inner: tokio::net::UdpSocket::bind("127.0.0.1:0").await?,
            rng: std::sync::Mutex::new(StdRng::seed_from_u64(seed)),
            loss,
        })
    }
}

impl netproto_transport_udp::DatagramSocket for LossySocket {
    fn poll_recv_from(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<SocketAddr>> {
        self.inner.poll_recv_from(cx, buf)
    }

    fn poll_send_to(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> std::task::Poll<std::io::Result<usize>> {
        use rand::Rng;
        let drop = self
            .rng
            .lock()
            .is_ok_and(|mut r| r.gen_bool(self.loss.clamp(0.0, 1.0)));
        if drop {
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        self.inner.poll_send_to(cx, buf, target)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
