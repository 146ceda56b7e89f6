//! Full-state exchange (push/pull): a node sends its whole membership table
//! to one random member — down ones included — and gets that member's table
//! back. Gossip only carries recent news; this is how the two sides of a
//! healed partition learn about each other, and how a node that missed news
//! catches up.
//!
//! Layout (docs/WIRE.md "Cluster"): `count (u16 BE) | member × count`, each
//! member in foca's postcard encoding. The sender lists itself first, alive.

use std::time::Instant;

use bytes::{Buf, BufMut, Bytes};
use foca::{Codec as _, Member};
use netproto_transport_udp::SessionId;

use crate::codec::CodecError;
use crate::links::Channel;
use crate::node::Node;
use crate::{DropReason, MemberId};

impl Node {
    /// Sends our table to `to` on `channel` (a push or a reply).
    pub(crate) fn send_state(&mut self, now: Instant, to: MemberId, channel: Channel) {
        let limit = self.cfg.max_members;
        let own = Member::alive(self.id());
        let table: Vec<Member<MemberId>> = std::iter::once(own)
            .chain(self.foca.iter_membership_state().cloned())
            .take(limit)
            .collect();
        let mut buf = Vec::with_capacity(2 + table.len() * 64);
        #[allow(clippy::cast_possible_truncation)]
        // max_members is checked against u16 in `ClusterConfig::foca`
        buf.put_u16(table.len() as u16);
        for m in &table {
            if let Err(e) = self.codec.encode_member(m, &mut buf) {
                tracing::debug!(error = %e, "membership state not encoded");
                return;
            }
        }
        self.stats.syncs += 1;
        self.route(now, to, channel, Bytes::from(buf));
    }

    /// Applies a table a member sent; answers a push with our own.
    pub(crate) fn on_state(
        &mut self,
        now: Instant,
        sid: SessionId,
        key: &[u8; 32],
        channel: Channel,
        mut payload: &[u8],
    ) {
        if payload.len() < 2 {
            return self.drop(DropReason::Malformed);
        }
        let count = usize::from(payload.get_u16());
        if count > self.cfg.max_members {
            return self.drop(DropReason::TooManyMembers);
        }
        let mut table = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            match self.codec.decode_member(&mut payload) {
                Ok(m) => table.push(m),
                Err(CodecError::NotAllowed) => return self.drop(DropReason::NotAllowed),
                Err(CodecError::Postcard(_)) => return self.drop(DropReason::Malformed),
            }
        }
        if !payload.is_empty() {
            return self.drop(DropReason::Malformed);
        }
        if let Err(e) = self.foca.apply_many(table.into_iter(), true, &mut self.rt) {
            tracing::debug!(error = %e, "membership state refused");
            self.drop(DropReason::Refused);
        }
        self.drain(now);
        self.seen(key, now);
        if channel == Channel::SyncPush && !self.has_left() {
            let to = self.member_for(sid, key);
            self.send_state(now, to, Channel::SyncReply);
        }
    }
}
