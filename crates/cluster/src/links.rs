//! Which UDP session carries traffic to which member, and what arrives on
//! each: every packet travels sealed in a session with the member itself,
//! opened on demand, and a membership packet counts only if the identity it
//! claims is the key that authenticated its session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use foca::Codec as _;
use netproto_transport_udp::{Delivery, Event, SessionId};
use netproto_wire::{Frame, FrameKind};

use crate::codec::{is_not_allowed, CodecError};
use crate::node::Node;
use crate::{ClusterEvent, DropReason, MemberId};

/// What a message on a cluster session is (its frame's stream id;
/// docs/WIRE.md "Cluster").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// A foca packet. Every channel is reliable (retransmitted after the
    /// session's RTO, 50 ms at least): SWIM tolerates loss, but a lost
    /// refutation turns a suspicion into a false "down". Measured in the
    /// simulation (5 nodes, 10 % datagram loss, 600 s, seed 21): sent
    /// unreliably, 51 suspicions and 17 false downs; two unreliable copies,
    /// 3–22 suspicions and up to 7 false downs; reliable, none. A dead
    /// member still fails its probes: retransmissions reach nobody.
    Membership = 1,
    /// A broadcast item sent directly (reliable).
    Broadcast = 2,
    /// An application message (reliable).
    Message = 3,
    /// A full membership state; the receiver answers with its own.
    SyncPush = 4,
    /// The answer to a state push.
    SyncReply = 5,
    /// The sender is leaving (empty).
    Leave = 6,
}

impl Channel {
    const fn from_id(id: u64) -> Option<Self> {
        Some(match id {
            1 => Self::Membership,
            2 => Self::Broadcast,
            3 => Self::Message,
            4 => Self::SyncPush,
            5 => Self::SyncReply,
            6 => Self::Leave,
            _ => return None,
        })
    }
}

/// One session with a (would-be) member.
#[derive(Debug)]
struct Link {
    addr: SocketAddr,
    /// The peer's key: known from the start when we dial a member, learnt
    /// in the handshake for seeds and incoming sessions.
    key: Option<[u8; 32]>,
    /// The peer's generation, once known.
    generation: Option<u64>,
    established: bool,
    /// Dialled as a seed: announce once established.
    seed: bool,
    /// Held until the handshake completes.
    queue: Vec<(Channel, Bytes)>,
}

/// A node's session with a seed address.
pub(crate) enum SeedLink {
    /// None.
    None,
    /// Its handshake is running.
    Opening,
    /// Established with the seed holding this key.
    Established([u8; 32]),
}

/// The sessions of a node.
#[derive(Debug, Default)]
pub(crate) struct Links {
    map: HashMap<SessionId, Link>,
}

impl Links {
    /// What we have with `addr`.
    pub(crate) fn state_of(&self, addr: SocketAddr) -> SeedLink {
        let mut found = SeedLink::None;
        for l in self.map.values().filter(|l| l.addr == addr) {
            match (l.established, l.key) {
                (true, Some(k)) => return SeedLink::Established(k),
                _ => found = SeedLink::Opening,
            }
        }
        found
    }

    pub(crate) fn opened(
        &mut self,
        sid: SessionId,
        addr: SocketAddr,
        key: Option<[u8; 32]>,
        generation: Option<u64>,
        seed: bool,
    ) {
        self.map.insert(
            sid,
            Link {
                addr,
                key,
                generation,
                established: false,
                seed,
                queue: Vec::new(),
            },
        );
    }

    /// The session to reach run `generation` of `key`: an established one
    /// before one still in its handshake; one whose peer is that run or a
    /// newer one (a restarted member takes what was meant for its previous
    /// run), or not known yet.
    fn best(&self, key: &[u8; 32], generation: u64) -> Option<(SessionId, bool)> {
        self.map
            .iter()
            .filter(|(_, l)| {
                l.key.as_ref() == Some(key) && l.generation.is_none_or(|g| g >= generation)
            })
            .max_by_key(|(sid, l)| (l.established, l.generation, sid.0))
            .map(|(sid, l)| (*sid, l.established))
    }

    /// Records the run behind `sid`; returns the other sessions with the
    /// same key whose peer is an older run (dead: a member's new run never
    /// uses its old sessions).
    fn learn_generation(
        &mut self,
        sid: SessionId,
        key: &[u8; 32],
        generation: u64,
    ) -> Vec<SessionId> {
        if let Some(l) = self.map.get_mut(&sid) {
            if l.generation.is_none_or(|g| g < generation) {
                l.generation = Some(generation);
            }
        }
        self.map
            .iter()
            .filter(|(other, l)| {
                **other != sid
                    && l.key.as_ref() == Some(key)
                    && l.generation.is_some_and(|g| g < generation)
            })
            .map(|(other, _)| *other)
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl Node {
    /// After [`Node::leave`]: whether every member it told has
    /// acknowledged the LEAVE (no handshake still waiting to carry it, no
    /// reliable message unacknowledged on its session). A driver keeps the
    /// node running until then, within a bound of its own: a member that
    /// died meanwhile never acknowledges.
    pub fn leave_settled(&self) -> bool {
        self.links.map.iter().all(|(sid, link)| {
            !link.key.is_some_and(|k| self.told.contains(&k))
                || (link.queue.is_empty() && self.endpoint.queued(*sid).is_none_or(|q| q == 0))
        })
    }

    /// Sends `payload` on `channel` to member `to`, opening a session if
    /// there is none.
    pub(crate) fn route(&mut self, now: Instant, to: MemberId, channel: Channel, payload: Bytes) {
        let key = *to.key_bytes();
        if key == *self.id().key_bytes() {
            return;
        }
        let sid = match self.links.best(&key, to.generation()) {
            Some((sid, true)) => return self.send_on(now, sid, channel, payload),
            Some((sid, false)) => sid,
            None => match self.connect(now, to.addr(), Some(to.key()), Some(to.generation())) {
                Some(sid) => sid,
                None => return self.drop(DropReason::Unroutable),
            },
        };
        let max = self.cfg.max_queued_packets;
        match self.links.map.get_mut(&sid) {
            Some(link) if link.queue.len() < max => link.queue.push((channel, payload)),
            _ => self.drop(DropReason::Unroutable),
        }
    }

    fn send_on(&mut self, now: Instant, sid: SessionId, channel: Channel, payload: Bytes) {
        let frame = Frame::data(channel as u64, payload);
        if let Err(e) = self.endpoint.send(now, sid, &frame, Delivery::Reliable) {
            tracing::debug!(session = sid.0, error = %e, "cluster send failed");
            self.drop(DropReason::Unroutable);
        }
    }

    pub(crate) fn on_session_event(&mut self, now: Instant, sid: SessionId, ev: Event) {
        match ev {
            Event::Connected(info) => {
                let own = *self.id().key_bytes();
                let key = match info.peer_key {
                    Some(k) if *k.as_bytes() != own => *k.as_bytes(),
                    // Anonymous peers are not members; a seed list that
                    // names ourselves leads here too.
                    _ => {
                        self.links.map.remove(&sid);
                        return self.endpoint.close(now, sid, "not a member");
                    }
                };
                let link = self.links.map.entry(sid).or_insert(Link {
                    addr: info.peer_addr,
                    key: None,
                    generation: None,
                    established: false,
                    seed: false,
                    queue: Vec::new(),
                });
                link.key = Some(key);
                link.established = true;
                let (queue, seed, addr) = (std::mem::take(&mut link.queue), link.seed, link.addr);
                for (channel, payload) in queue {
                    self.send_on(now, sid, channel, payload);
                }
                if seed && !self.has_left() {
                    self.announce(now, key, addr);
                }
            }
            Event::Message { frame, .. } => self.on_message(now, sid, frame),
            Event::Closed(e) => {
                if let Some(link) = self.links.map.remove(&sid) {
                    tracing::debug!(session = sid.0, peer = %link.addr, error = %e, "cluster session closed");
                    for _ in &link.queue {
                        self.drop(DropReason::Unroutable);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, now: Instant, sid: SessionId, frame: Frame) {
        let Some(key) = self.links.map.get(&sid).and_then(|l| l.key) else {
            return;
        };
        let channel = if frame.kind == FrameKind::Data {
            Channel::from_id(frame.stream_id)
        } else {
            None
        };
        match channel {
            Some(Channel::Membership) => self.on_membership(now, sid, &key, &frame.payload),
            Some(Channel::Broadcast) => {
                let via = self.member_for(sid, &key);
                let accepted = self
                    .handler
                    .inbox()
                    .accept(&frame.payload, Some(&via), false);
                if accepted.is_err() {
                    self.drop(DropReason::Malformed);
                }
                self.drain(now);
            }
            Some(Channel::Message) => {
                let from = self.member_for(sid, &key);
                self.push_event(ClusterEvent::Message {
                    from,
                    payload: frame.payload,
                });
            }
            Some(ch @ (Channel::SyncPush | Channel::SyncReply)) => {
                self.on_state(now, sid, &key, ch, &frame.payload);
            }
            Some(Channel::Leave) => {
                self.leaving.insert(key);
            }
            None => self.drop(DropReason::UnknownChannel),
        }
    }

    /// The member behind a session, as the view knows it.
    pub(crate) fn member_for(&self, sid: SessionId, key: &[u8; 32]) -> MemberId {
        if let Some(m) = self.members_by_key(key) {
            return m;
        }
        let (addr, generation) = self.links.map.get(&sid).map_or((self.id().addr(), 0), |l| {
            (l.addr, l.generation.unwrap_or(0))
        });
        MemberId::new(
            &netproto_crypto::PublicKey::from_bytes(*key),
            addr,
            generation,
        )
    }

    fn on_membership(&mut self, now: Instant, sid: SessionId, key: &[u8; 32], packet: &[u8]) {
        let header = match self.codec.decode_header(packet) {
            Ok(h) => h,
            Err(CodecError::NotAllowed) => return self.drop(DropReason::NotAllowed),
            Err(CodecError::Postcard(_)) => return self.drop(DropReason::Malformed),
        };
        if header.src.key_bytes() != key {
            tracing::warn!(
                session = sid.0,
                claimed = %header.src,
                "membership packet claims another member's identity"
            );
            return self.drop(DropReason::Impersonation);
        }
        for stale in self
            .links
            .learn_generation(sid, key, header.src.generation())
        {
            self.links.map.remove(&stale);
            self.endpoint.close(now, stale, "superseded by a newer run");
        }
        self.stats.packets_in += 1;
        let backlog = self.foca.custom_broadcast_backlog();
        self.handler.inbox().backlog = backlog;
        if let Err(e) = self.foca.handle_data(packet, &mut self.rt) {
            tracing::debug!(error = %e, "membership packet refused");
            let reason = if is_not_allowed(&e) {
                DropReason::NotAllowed
            } else {
                DropReason::Refused
            };
            self.drop(reason);
        }
        self.drain(now);
        self.seen(key, now);
    }
}
