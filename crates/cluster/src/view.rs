//! The application's view of the membership: members, their state and when
//! they were last heard from, and the events that changed it.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use netproto_crypto::PublicKey;

use crate::MemberId;

/// A member's state as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; declared down unless it refutes in time.
    Suspect,
    /// Declared down (it failed, or a partition cut it off).
    Down,
    /// Announced that it was leaving, then went down.
    Left,
}

impl MemberState {
    /// Alive or suspect: still a member.
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Alive | Self::Suspect)
    }

    /// The metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Down => "down",
            Self::Left => "left",
        }
    }
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// Its identity.
    pub id: MemberId,
    /// Its state.
    pub state: MemberState,
    /// SWIM's incarnation (raised by the member to refute a suspicion).
    pub incarnation: u16,
    /// When a membership packet from it last arrived here (`None`: only
    /// heard of through others).
    pub last_seen: Option<Instant>,
}

/// A change in the membership, or something a member sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A member joined, or refuted a suspicion.
    Up(MemberId),
    /// A member missed its probes; it is declared down unless it refutes.
    Suspect(MemberId),
    /// A member was declared down.
    Down(MemberId),
    /// A member left on purpose ([`crate::Node::leave`]).
    Left(MemberId),
    /// A member came back as a new run (restart, or after it was declared
    /// down).
    Rejoined {
        /// The run the cluster knew.
        previous: MemberId,
        /// The new run.
        id: MemberId,
    },
    /// The cluster had declared this node down; it rejoined under a newer
    /// generation.
    Renewed(MemberId),
    /// A broadcast from a member.
    Broadcast {
        /// The key of the member that started it, as that member's item
        /// says (every hop is an authenticated member, but a member can
        /// forward an item naming another origin).
        origin: PublicKey,
        /// The member it came from (authenticated).
        via: MemberId,
        /// The payload.
        payload: Bytes,
    },
    /// A message a member sent to this node ([`crate::Node::send_to`]).
    Message {
        /// The sender (authenticated).
        from: MemberId,
        /// The payload.
        payload: Bytes,
    },
}

impl ClusterEvent {
    /// Bytes charged against [`crate::ClusterConfig::max_event_bytes`].
    pub(crate) fn cost(&self) -> usize {
        64 + match self {
            Self::Broadcast { payload, .. } | Self::Message { payload, .. } => payload.len(),
            _ => 0,
        }
    }
}

/// Members by key, as last reported.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) members: HashMap<[u8; 32], Member>,
}

impl View {
    /// Brings the view up to foca's table; returns what changed.
    /// `left(key)` says whether the member announced its leave.
    pub(crate) fn refresh<'a>(
        &mut self,
        table: impl Iterator<Item = &'a foca::Member<MemberId>>,
        left: impl Fn(&[u8; 32]) -> bool,
        out: &mut Vec<ClusterEvent>,
    ) {
        let mut present = std::collections::HashSet::new();
        for m in table {
            let id = *m.id();
            present.insert(*id.key_bytes());
            let state = match m.state() {
                foca::State::Alive => MemberState::Alive,
                foca::State::Suspect => MemberState::Suspect,
                foca::State::Down if left(id.key_bytes()) => MemberState::Left,
                foca::State::Down => MemberState::Down,
            };
            let entry = self.members.entry(*id.key_bytes()).or_insert_with(|| {
                if state.is_active() {
                    out.push(ClusterEvent::Up(id));
                }
                Member {
                    id,
                    state,
                    incarnation: m.incarnation(),
                    last_seen: None,
                }
            });
            entry.incarnation = m.incarnation();
            if entry.id != id {
                if id.generation() < entry.id.generation() {
                    continue;
                }
                if state.is_active() {
                    out.push(ClusterEvent::Rejoined {
                        previous: entry.id,
                        id,
                    });
                }
                entry.id = id;
                entry.state = state;
                continue;
            }
            if entry.state == state {
                continue;
            }
            out.push(match state {
                MemberState::Alive => ClusterEvent::Up(id),
                MemberState::Suspect => ClusterEvent::Suspect(id),
                MemberState::Down => ClusterEvent::Down(id),
                MemberState::Left => ClusterEvent::Left(id),
            });
            entry.state = state;
        }
        if present.len() < self.members.len() {
            // foca forgot members down for longer than `remove_down_after`.
            self.members.retain(|k, _| present.contains(k));
        }
    }

    /// Notes that a packet from `key` arrived.
    pub(crate) fn seen(&mut self, key: &[u8; 32], now: Instant) {
        if let Some(m) = self.members.get_mut(key) {
            m.last_seen = Some(now);
        }
    }

    /// Members by state (for the metric).
    pub(crate) fn count(&self, state: MemberState) -> usize {
        self.members.values().filter(|m| m.state == state).count()
    }
}
