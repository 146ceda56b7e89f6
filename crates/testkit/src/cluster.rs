//! Cluster nodes on a simulated network in virtual time: start, kill,
//! restart and partition members; record every event with its time. No
//! sleeps — the clock jumps to the next datagram or deadline. Setup errors
//! (a node that cannot be built) panic: this is test scaffolding.
#![allow(clippy::panic, clippy::missing_panics_doc)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netproto_cluster::{ClusterConfig, ClusterEvent, MemberId, MemberState, Node};
use netproto_crypto::{Keypair, PublicKey};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::{LinkFaults, SimDatagram, SimLink};

/// Wall-clock time at the start of every simulation (the generation of a
/// node started at time zero, in milliseconds).
const WALL: Duration = Duration::from_secs(1_700_000_000);
/// Wake-ups at one instant before the simulation is declared stuck.
const MAX_SPINS: u32 = 100_000;

/// The address of simulated node `i` (each on its own host, so per-source
/// handshake limits apply per node as on a real network).
pub fn cluster_addr(i: usize) -> SocketAddr {
    let host = u8::try_from(i + 1).unwrap_or(u8::MAX);
    SocketAddr::from(([10, 0, 1, host], 7000))
}

/// A partition: datagrams between `side` and the rest are dropped while it
/// lasts.
#[derive(Debug, Clone)]
struct Cut {
    side: HashSet<usize>,
    from: Instant,
    until: Instant,
}

/// The simulated cluster. See the module documentation.
#[derive(Debug)]
pub struct SimCluster {
    /// Virtual now.
    pub now: Instant,
    start: Instant,
    link: SimLink,
    seed: u64,
    cfg: ClusterConfig,
    keys: Vec<Keypair>,
    nodes: Vec<Option<Node>>,
    runs: Vec<u64>,
    cuts: Vec<Cut>,
    /// Every event each node reported, with the virtual time since start.
    pub events: Vec<Vec<(Duration, ClusterEvent)>>,
    /// When set, every datagram delivered is copied here (for replays).
    pub tap: Option<Vec<SimDatagram>>,
    /// Datagrams that arrived where no node runs (the newest 100,000), for
    /// a test that plays a hand-made peer at such an address.
    pub unclaimed: Vec<SimDatagram>,
}

impl SimCluster {
    /// `n` nodes (not started) with keys on one allow-list, on a link with
    /// `faults`; everything random comes from `seed`.
    pub fn new(n: usize, seed: u64, faults: LinkFaults) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate(&mut rng)).collect();
        let cfg = ClusterConfig::lan(keys.iter().map(|k| *k.public()));
        let now = Instant::now();
        Self {
            now,
            start: now,
            link: SimLink::new(seed, faults),
            seed,
            cfg,
            keys,
            nodes: (0..n).map(|_| None).collect(),
            runs: vec![0; n],
            cuts: Vec::new(),
            events: vec![Vec::new(); n],
            tap: None,
            unclaimed: Vec::new(),
        }
    }

    /// Replaces the configuration nodes are started with.
    pub fn set_config(&mut self, cfg: ClusterConfig) {
        self.cfg = cfg;
    }

    /// The configuration nodes are started with.
    pub const fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// Node `i`'s static key pair.
    pub fn keypair(&self, i: usize) -> Keypair {
        self.keys[i].clone()
    }

    /// Node `i`'s public key.
    pub fn key(&self, i: usize) -> PublicKey {
        *self.keys[i].public()
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Starts node `i` (again, after [`SimCluster::kill`]: a new run with a
    /// newer generation) and joins through `seeds` (node indexes).
    ///
    /// # Panics
    /// If the node cannot be built (a test setup error).
    pub fn start(&mut self, i: usize, seeds: &[usize]) {
        self.runs[i] += 1;
        let rng = StdRng::seed_from_u64(
            self.seed
                .wrapping_mul(1_000)
                .wrapping_add((i as u64) << 8)
                .wrapping_add(self.runs[i]),
        );
        let wall = WALL + self.elapsed();
        let mut node = Node::new(
            self.cfg.clone(),
            self.keys[i].clone(),
            cluster_addr(i),
            Box::new(rng),
            self.now,
            wall,
        )
        .unwrap_or_else(|e| panic!("node {i}: {e}"));
        let seeds: Vec<SocketAddr> = seeds.iter().map(|&s| cluster_addr(s)).collect();
        node.join(self.now, &seeds)
            .unwrap_or_else(|e| panic!("node {i} join: {e}"));
        self.nodes[i] = Some(node);
    }

    /// Starts every node, all joining through node 0.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i, &[0]);
        }
    }

    /// Stops node `i` at once (a crash: nothing is sent).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// Node `i`, if running.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].as_ref()
    }

    /// Node `i`, if running.
    pub fn node_mut(&mut self, i: usize) -> Option<&mut Node> {
        self.nodes[i].as_mut()
    }

    /// Node `i`'s identity.
    ///
    /// # Panics
    /// If node `i` is not running.
    pub fn id(&self, i: usize) -> MemberId {
        self.nodes[i]
            .as_ref()
            .map_or_else(|| panic!("node {i} is not running"), Node::id)
    }

    /// Cuts `side` off from the other nodes for `duration` from now.
    pub fn partition(&mut self, side: &[usize], duration: Duration) {
        self.cuts.push(Cut {
            side: side.iter().copied().collect(),
            from: self.now,
            until: self.now + duration,
        });
    }

    /// Hands a datagram to the network as if `from` had sent it.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.link.send(self.now, from, to, bytes);
    }

    fn index(addr: SocketAddr) -> Option<usize> {
        match addr {
            SocketAddr::V4(a) if a.port() == 7000 => usize::from(a.ip().octets()[3]).checked_sub(1),
            _ => None,
        }
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        self.cuts.iter().any(|c| {
            c.from <= self.now && self.now < c.until && c.side.contains(&a) != c.side.contains(&b)
        })
    }

    /// Moves datagrams from nodes to the link and events to the record.
    fn flush(&mut self) {
        let now = self.now;
        let at = self.elapsed();
        for i in 0..self.nodes.len() {
            let mut out = Vec::new();
            if let Some(node) = self.nodes[i].as_mut() {
                while let Some(t) = node.poll_transmit(now) {
                    out.push(t);
                }
                while let Some(ev) = node.poll_event() {
                    self.events[i].push((at, ev));
                }
            }
            for t in out {
                let blocked = Self::index(t.destination).is_some_and(|j| self.cut(i, j));
                if !blocked {
                    self.link
                        .send(now, cluster_addr(i), t.destination, &t.contents);
                }
            }
        }
    }

    /// Runs the network for `duration` of virtual time.
    ///
    /// # Panics
    /// If the nodes keep asking to be woken at the same instant.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until, |_| false);
    }

    /// Runs until `done` holds (checked after every step) or `limit` of
    /// virtual time passed; returns the virtual time it took, if it held.
    pub fn run_while_not(
        &mut self,
        limit: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Option<Duration> {
        let began = self.now;
        let until = self.now + limit;
        self.run_until(until, done).then(|| self.now - began)
    }

    fn run_until(&mut self, until: Instant, done: impl Fn(&Self) -> bool) -> bool {
        let mut spins = 0;
        let mut last = self.now;
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            let next = self
                .nodes
                .iter()
                .flatten()
                .filter_map(Node::poll_timeout)
                .chain(self.link.next_arrival())
                .min();
            let Some(next) = next.filter(|t| *t <= until) else {
                self.now = until;
                return false;
            };
            self.now = self.now.max(next);
            if self.now == last {
                spins += 1;
                assert!(
                    spins < MAX_SPINS,
                    "simulation stuck at {:?}",
                    self.elapsed()
                );
            } else {
                (spins, last) = (0, self.now);
            }
            let now = self.now;
            while let Some(mut d) = self.link.deliver(now) {
                if let Some(tap) = self.tap.as_mut() {
                    tap.push(d.clone());
                }
                match Self::index(d.to)
                    .and_then(|j| self.nodes.get_mut(j))
                    .and_then(Option::as_mut)
                {
                    Some(node) => node.handle_datagram(now, d.from, &mut d.bytes),
                    None if self.unclaimed.len() < 100_000 => self.unclaimed.push(d),
                    None => {}
                }
            }
            for node in self.nodes.iter_mut().flatten() {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
        }
    }

    /// What node `i` believes: its members' states by index of the node
    /// that holds the key (`None` for members it has not heard of).
    ///
    /// # Panics
    /// If node `i` is not running.
    pub fn view(&self, i: usize) -> Vec<Option<(MemberId, MemberState)>> {
        let node = self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is not running"));
        let members = node.members();
        (0..self.keys.len())
            .map(|j| {
                members
                    .iter()
                    .find(|m| m.id.key() == self.key(j))
                    .map(|m| (m.id, m.state))
            })
            .collect()
    }

    /// Whether every running node sees every other running node alive, as
    /// the run that is actually running, and no one else.
    pub fn converged(&self) -> bool {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect();
        running.iter().all(|&i| {
            let Some(node) = self.nodes[i].as_ref() else {
                return false;
            };
            let mut expected: Vec<MemberId> = running
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| self.id(j))
                .collect();
            expected.sort();
            node.active_members() == expected
                && node
                    .members()
                    .iter()
                    .all(|m| m.state != MemberState::Suspect)
        })
    }
}
