//! The sans-IO cluster node: foca, the UDP sessions it talks over, one
//! ordered timer queue, and the application's view.
//!
//! Datagrams, `now` and randomness go in (`handle_datagram`,
//! `handle_timeout`); datagrams, events and the next deadline come out
//! (`poll_transmit`, `poll_event`, `poll_timeout`). The tokio driver and the
//! deterministic simulation drive the same code.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, OwnedNotification, Timer};
use netproto_crypto::{AllowList, AnyPeer, HandshakeConfig, Keypair, PeerVerifier, PublicKey};
use netproto_transport_udp::{Endpoint, EndpointRng, EndpointStats, SessionId, Transmit};
use rand::{Rng, SeedableRng};
use rand_foca::SeedableRng as _;

use crate::broadcast::{self, Handler, Inbox};
use crate::codec::ClusterCodec;
use crate::config::Admission;
use crate::links::{Channel, Links, SeedLink};
use crate::view::View;
use crate::{ClusterConfig, ClusterError, ClusterEvent, DropReason, Member, MemberId, MemberState};

pub(crate) type Engine = Foca<MemberId, ClusterCodec, rand_foca::rngs::StdRng, Handler>;

/// Retry the seeds this often while no member is known.
const JOIN_RETRY: Duration = Duration::from_secs(2);

/// What a node counted (see [`Node::stats`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Membership packets handed to foca.
    pub packets_in: u64,
    /// Membership packets sent.
    pub packets_out: u64,
    /// State exchanges sent (push and reply).
    pub syncs: u64,
    /// What was dropped, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
}

impl ClusterStats {
    /// How many were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }
}

/// A cluster member's protocol state. See the module documentation.
pub struct Node {
    pub(crate) cfg: ClusterConfig,
    pub(crate) local: Keypair,
    pub(crate) verifier: Arc<dyn PeerVerifier>,
    pub(crate) foca: Engine,
    pub(crate) handler: Handler,
    pub(crate) codec: ClusterCodec,
    pub(crate) rt: AccumulatingRuntime<MemberId>,
    pub(crate) endpoint: Endpoint,
    pub(crate) links: Links,
    timers: BTreeMap<(Instant, u64), Timer<MemberId>>,
    timer_seq: u64,
    view: View,
    events: VecDeque<ClusterEvent>,
    event_bytes: usize,
    pub(crate) stats: ClusterStats,
    pub(crate) rng: rand::rngs::StdRng,
    next_sync: Option<Instant>,
    seeds: Vec<SocketAddr>,
    next_join: Option<Instant>,
    broadcast_seq: u64,
    pub(crate) leaving: HashSet<[u8; 32]>,
    left: bool,
    /// The members our LEAVE went to (see [`Node::leave_settled`]).
    pub(crate) told: Vec<[u8; 32]>,
    scratch: Vec<ClusterEvent>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", self.foca.identity())
            .field("members", &self.foca.num_members())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node with static key `local` that others reach at `addr`; its
    /// generation is `wall` (time since the Unix epoch) in milliseconds, so
    /// a restarted node is newer than its previous run.
    ///
    /// # Errors
    /// [`ClusterError::Config`] for a bad setting, [`ClusterError::Udp`] if
    /// the endpoint cannot be built.
    pub fn new(
        cfg: ClusterConfig,
        local: Keypair,
        addr: SocketAddr,
        mut rng: Box<dyn EndpointRng>,
        now: Instant,
        wall: Duration,
    ) -> Result<Self, ClusterError> {
        let foca_cfg = cfg.foca()?;
        let (verifier, allowed): (Arc<dyn PeerVerifier>, _) = match &cfg.admission {
            Admission::AllowList(keys) => (
                Arc::new(AllowList::new(keys.iter().copied())),
                Some(Arc::new(
                    keys.iter().map(|k| *k.as_bytes()).collect::<HashSet<_>>(),
                )),
            ),
            Admission::Open => {
                tracing::warn!(
                    "cluster admission is open: any key that completes the handshake may join"
                );
                (Arc::new(AnyPeer), None)
            }
        };
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let foca_rng = rand_foca::rngs::StdRng::from_seed(seed);
        rng.fill_bytes(&mut seed);
        let own_rng = rand::rngs::StdRng::from_seed(seed);
        let generation = u64::try_from(wall.as_millis()).unwrap_or(u64::MAX);
        let id = MemberId::new(local.public(), addr, generation);
        let handler = Handler(Arc::new(Mutex::new(Inbox::new(cfg.max_broadcasts))));
        let codec = ClusterCodec::new(allowed);
        let foca =
            Foca::with_custom_broadcast(id, foca_cfg, foca_rng, codec.clone(), handler.clone());
        let accept = HandshakeConfig::new(Some(local.clone()), verifier.clone());
        let endpoint = Endpoint::new(cfg.udp.clone(), Some(accept), rng, now, wall)?;
        let next_sync = cfg.sync_interval.map(|d| now + d);
        Ok(Self {
            cfg,
            local,
            verifier,
            foca,
            handler,
            codec,
            rt: AccumulatingRuntime::new(),
            endpoint,
            links: Links::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            view: View::default(),
            events: VecDeque::new(),
            event_bytes: 0,
            stats: ClusterStats::default(),
            rng: own_rng,
            next_sync,
            seeds: Vec::new(),
            next_join: None,
            broadcast_seq: 0,
            leaving: HashSet::new(),
            left: false,
            told: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// This node's identity.
    pub fn id(&self) -> MemberId {
        *self.foca.identity()
    }

    /// Joins the cluster through these seed addresses (their keys are
    /// learnt, and checked against the admission rule, in the handshake).
    /// Seeds are retried every 2 s while no member is known.
    ///
    /// # Errors
    /// [`ClusterError::Stopped`] after [`Node::leave`].
    pub fn join(&mut self, now: Instant, seeds: &[SocketAddr]) -> Result<(), ClusterError> {
        if self.left {
            return Err(ClusterError::Stopped);
        }
        let own = self.id().addr();
        self.seeds = seeds.iter().copied().filter(|s| *s != own).collect();
        self.contact_seeds(now);
        Ok(())
    }

    fn contact_seeds(&mut self, now: Instant) {
        for seed in self.seeds.clone() {
            match self.links.state_of(seed) {
                // The announce may have been lost (or overtaken the
                // handshake's last message): say it again.
                SeedLink::Established(key) => self.announce(now, key, seed),
                SeedLink::Opening => {}
                SeedLink::None => {
                    self.connect(now, seed, None, None);
                }
            }
        }
        self.next_join = (!self.seeds.is_empty()).then(|| now + JOIN_RETRY);
    }

    /// Asks the member with `key` at `addr` to let us in. foca accepts an
    /// announce addressed to any run of its key, so generation 0 reaches
    /// the current one.
    pub(crate) fn announce(&mut self, now: Instant, key: [u8; 32], addr: SocketAddr) {
        let dst = MemberId::new(&PublicKey::from_bytes(key), addr, 0);
        if let Err(e) = self.foca.announce(dst, &mut self.rt) {
            tracing::debug!(error = %e, "announce to seed");
        }
        self.drain(now);
    }

    /// Takes one datagram that arrived on the node's socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        self.endpoint.handle_datagram(now, from, datagram);
        self.endpoint.flush_acks(now);
        self.process(now);
    }

    /// Runs what is due at `now` (timers, retransmissions, state exchange).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        // foca needs its timers in the order they were due (foca issue
        // #26): one queue, ordered by deadline then submission.
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            if let Err(e) = self.foca.handle_timer(timer, &mut self.rt) {
                tracing::debug!(error = %e, "membership timer");
            }
            self.drain(now);
        }
        if self.next_sync.is_some_and(|t| t <= now) {
            self.sync(now);
        }
        if self.next_join.is_some_and(|t| t <= now) {
            if self.foca.num_members() == 0 && !self.left {
                self.contact_seeds(now);
            } else {
                self.next_join = None;
            }
        }
        self.process(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.endpoint.poll_transmit(now)
    }

    /// When [`Node::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.endpoint.poll_timeout(),
            self.timers.first_key_value().map(|(k, _)| k.0),
            self.next_sync,
            self.next_join,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next membership change or message.
    pub fn poll_event(&mut self) -> Option<ClusterEvent> {
        let ev = self.events.pop_front()?;
        self.event_bytes = self.event_bytes.saturating_sub(ev.cost());
        Some(ev)
    }

    /// Every member this node knows of (down ones until foca forgets them),
    /// not counting itself.
    pub fn members(&self) -> Vec<Member> {
        let mut all: Vec<Member> = self.view.members.values().cloned().collect();
        all.sort_by_key(|m| m.id);
        all
    }

    /// Alive and suspect members.
    pub fn active_members(&self) -> Vec<MemberId> {
        let mut ids: Vec<MemberId> = self.foca.iter_members().map(|m| *m.id()).collect();
        ids.sort();
        ids
    }

    /// What the node counted.
    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// What the UDP endpoint under the node counted.
    pub fn endpoint_stats(&self) -> EndpointStats {
        self.endpoint.stats()
    }

    /// Sends `payload` to every active member. Up to
    /// [`ClusterConfig::max_packet`] − 64 bytes it rides foca's gossip
    /// (reaching members this node cannot reach directly); larger ones go to
    /// each member as a reliable message.
    ///
    /// # Errors
    /// [`ClusterError::TooLarge`] over the UDP message limit,
    /// [`ClusterError::Stopped`] after [`Node::leave`].
    pub fn broadcast(&mut self, now: Instant, payload: &[u8]) -> Result<(), ClusterError> {
        if self.left {
            return Err(ClusterError::Stopped);
        }
        let max = self
            .cfg
            .udp
            .max_message
            .saturating_sub(broadcast::ITEM_HEADER + 16);
        if payload.is_empty() || payload.len() > max {
            return Err(ClusterError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        self.broadcast_seq += 1;
        let item = broadcast::item(&self.id(), self.broadcast_seq, payload);
        if item.len() + 16 <= self.cfg.max_packet() / 2 {
            self.foca
                .add_broadcast(&item)
                .map_err(|e| ClusterError::membership(&e))?;
            // Spread it now rather than at the next gossip tick.
            self.foca
                .broadcast(&mut self.rt)
                .map_err(|e| ClusterError::membership(&e))?;
        } else {
            self.handler.inbox().accept(&item, None, false).ok();
            let item = Bytes::from(item);
            for to in self.active_members() {
                self.route(now, to, Channel::Broadcast, item.clone());
            }
        }
        self.process(now);
        Ok(())
    }

    /// Sends `payload` to one member as a reliable message; it arrives as
    /// [`ClusterEvent::Message`].
    ///
    /// # Errors
    /// [`ClusterError::NotAMember`] if `to` is not active here,
    /// [`ClusterError::TooLarge`] over the UDP message limit.
    pub fn send_to(
        &mut self,
        now: Instant,
        to: &MemberId,
        payload: Bytes,
    ) -> Result<(), ClusterError> {
        if !self.foca.iter_members().any(|m| m.id() == to) {
            return Err(ClusterError::NotAMember(*to));
        }
        let max = self.cfg.udp.max_message.saturating_sub(16);
        if payload.len() > max {
            return Err(ClusterError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        self.route(now, *to, Channel::Message, payload);
        self.process(now);
        Ok(())
    }

    /// Leaves the cluster: members are told directly (so they report
    /// [`ClusterEvent::Left`] rather than a failure) and through gossip.
    /// Keep driving the node for a moment so the packets go out.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        for to in self.active_members() {
            self.told.push(*to.key_bytes());
            self.route(now, to, Channel::Leave, Bytes::new());
        }
        if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
            tracing::debug!(error = %e, "leaving the cluster");
        }
        self.left = true;
        self.seeds.clear();
        self.next_join = None;
        self.next_sync = None;
        self.drain(now);
        self.process(now);
    }

    /// Whether [`Node::leave`] was called.
    pub const fn has_left(&self) -> bool {
        self.left
    }

    /// Handles what the endpoint reported and what foca asked for until
    /// neither has anything more.
    pub(crate) fn process(&mut self, now: Instant) {
        while let Some((sid, ev)) = self.endpoint.poll_event() {
            self.on_session_event(now, sid, ev);
        }
        self.drain(now);
    }

    /// Carries out what foca asked for (sends, timers, notifications) and
    /// brings the view up to date.
    pub(crate) fn drain(&mut self, now: Instant) {
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.timer_seq += 1;
            self.timers.insert((now + after, self.timer_seq), timer);
        }
        while let Some((to, packet)) = self.rt.to_send() {
            self.stats.packets_out += 1;
            self.route(now, to, Channel::Membership, packet);
        }
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::Rejoin(id) => self.push_event(ClusterEvent::Renewed(id)),
                OwnedNotification::Defunct => {
                    tracing::warn!("the cluster declared this node down; rejoining");
                }
                // Just joined (or rejoined): swap tables with someone soon
                // rather than after a whole interval. Gossip tells the
                // cluster about a newcomer only a few times; with 32 nodes
                // joining at once on loopback, 2 of 6 runs left a node
                // missing one member for 11-23 s without this.
                OwnedNotification::Active if self.cfg.sync_interval.is_some() => {
                    let soon = now + Duration::from_millis(self.rng.gen_range(1_000..3_000));
                    self.next_sync = Some(self.next_sync.map_or(soon, |t| t.min(soon)));
                }
                _ => {}
            }
        }
        self.refresh_view();
        let received: Vec<_> = self.handler.inbox().received.drain(..).collect();
        for r in received {
            if let Some(via) = r.via {
                self.push_event(ClusterEvent::Broadcast {
                    origin: PublicKey::from_bytes(r.origin),
                    via,
                    payload: r.payload,
                });
            }
        }
    }

    fn refresh_view(&mut self) {
        let mut out = std::mem::take(&mut self.scratch);
        let leaving = &self.leaving;
        self.view.refresh(
            self.foca.iter_membership_state(),
            |k| leaving.contains(k),
            &mut out,
        );
        if !out.is_empty() {
            for state in [
                MemberState::Alive,
                MemberState::Suspect,
                MemberState::Down,
                MemberState::Left,
            ] {
                #[allow(clippy::cast_precision_loss)] // a member count
                metrics::gauge!("netproto_cluster_members", "state" => state.label())
                    .set(self.view.count(state) as f64);
            }
        }
        for ev in out.drain(..) {
            self.push_event(ev);
        }
        self.scratch = out;
    }

    pub(crate) fn push_event(&mut self, ev: ClusterEvent) {
        let cost = ev.cost();
        if self.event_bytes + cost > self.cfg.max_event_bytes {
            self.drop(DropReason::EventsFull);
            return;
        }
        self.event_bytes += cost;
        self.events.push_back(ev);
    }

    pub(crate) fn seen(&mut self, key: &[u8; 32], now: Instant) {
        self.view.seen(key, now);
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        let total = self.stats.dropped.entry(reason).or_insert(0);
        *total += 1;
        metrics::counter!("netproto_cluster_dropped_total", "reason" => reason.label())
            .increment(1);
        // The 1st, 2nd, 4th, 8th … drop of each reason is logged: a flood of
        // a million costs 20 lines.
        if total.is_power_of_two() {
            tracing::info!(
                reason = reason.label(),
                total = *total,
                "cluster input dropped"
            );
        }
    }

    /// Opens a session to `addr` (expecting `key` if known) for a member of
    /// `generation`; a seed when `key` is not known.
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        key: Option<PublicKey>,
        generation: Option<u64>,
    ) -> Option<SessionId> {
        let mut hs = HandshakeConfig::new(Some(self.local.clone()), self.verifier.clone());
        if let Some(k) = key {
            hs = hs.with_remote_key(k);
        }
        match self.endpoint.connect(now, addr, hs) {
            Ok(sid) => {
                let seed = key.is_none();
                self.links
                    .opened(sid, addr, key.map(|k| *k.as_bytes()), generation, seed);
                Some(sid)
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "cluster session not opened");
                None
            }
        }
    }

    /// The member with this key in the view.
    pub(crate) fn members_by_key(&self, key: &[u8; 32]) -> Option<MemberId> {
        self.view.members.get(key).map(|m| m.id)
    }

    /// Sessions open or opening.
    pub fn sessions(&self) -> usize {
        self.links.len()
    }

    /// Sends our whole membership table to one random member, down ones
    /// included: that is how two sides of a healed partition find out.
    fn sync(&mut self, now: Instant) {
        let Some(every) = self.cfg.sync_interval else {
            self.next_sync = None;
            return;
        };
        // ±10 % so nodes started together do not sync in lockstep.
        let jitter = self.rng.gen_range(0.9..1.1);
        self.next_sync = Some(now + every.mul_f64(jitter));
        let own = *self.id().key_bytes();
        let candidates: Vec<MemberId> = self
            .foca
            .iter_membership_state()
            .map(|m| *m.id())
            .filter(|id| *id.key_bytes() != own)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let to = candidates[self.rng.gen_range(0..candidates.len())];
        self.send_state(now, to, Channel::SyncPush);
    }
}
