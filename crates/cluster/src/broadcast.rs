//! Application broadcasts: items foca piggybacks on its packets (small ones)
//! or that a node sends to every member directly (large ones).
//!
//! An item is `origin key (32) | origin generation (u64 BE) | sequence
//! (u64 BE) | payload` (docs/WIRE.md "Cluster"). The first 48 bytes name it:
//! a node hands each item to its application once and gossips it on only
//! the first time it sees it.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use foca::{BroadcastHandler, Invalidates};

use crate::MemberId;

/// Bytes before an item's payload.
pub(crate) const ITEM_HEADER: usize = 48;
/// Item names remembered to drop copies (about 200 KiB): at the default
/// 256 broadcasts in flight, an item's copies stop arriving long before
/// 4,096 newer ones push its name out.
const SEEN: usize = 4096;

/// An item's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemKey([u8; ITEM_HEADER]);

impl Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        self == other
    }
}

/// An item too short to hold its header and one byte.
#[derive(Debug, thiserror::Error)]
#[error("broadcast item of {0} bytes is shorter than its header")]
pub(crate) struct ShortItem(usize);

/// A broadcast that arrived, for the application.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) origin: [u8; 32],
    pub(crate) via: Option<MemberId>,
    pub(crate) payload: Bytes,
}

/// What the handler shares with its node.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    pub(crate) received: VecDeque<Received>,
    seen: HashSet<[u8; ITEM_HEADER]>,
    order: VecDeque<[u8; ITEM_HEADER]>,
    /// Items foca holds for gossip, set by the node before each packet.
    pub(crate) backlog: usize,
    pub(crate) max_backlog: usize,
    /// Items refused because `backlog` was at `max_backlog`.
    pub(crate) refused: u64,
}

impl Inbox {
    pub(crate) fn new(max_backlog: usize) -> Self {
        Self {
            max_backlog,
            ..Self::default()
        }
    }

    /// Takes an item (from a peer when `via` is set); `Some` if it is new.
    pub(crate) fn accept(
        &mut self,
        item: &[u8],
        via: Option<&MemberId>,
        gossiped: bool,
    ) -> Result<Option<ItemKey>, ShortItem> {
        let (Some(name), Some(payload)) = (item.get(..ITEM_HEADER), item.get(ITEM_HEADER..)) else {
            return Err(ShortItem(item.len()));
        };
        if payload.is_empty() {
            return Err(ShortItem(item.len()));
        }
        let mut key = [0; ITEM_HEADER];
        key.copy_from_slice(name);
        if self.seen.contains(&key) {
            return Ok(None);
        }
        if gossiped && via.is_some() && self.backlog >= self.max_backlog {
            self.refused += 1;
            return Ok(None);
        }
        if self.order.len() >= SEEN {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key);
        self.order.push_back(key);
        if let Some(via) = via {
            let mut origin = [0; 32];
            origin.copy_from_slice(&key[..32]);
            self.received.push_back(Received {
                origin,
                via: Some(*via),
                payload: Bytes::copy_from_slice(payload),
            });
        }
        Ok(Some(ItemKey(key)))
    }
}

/// Builds an item.
pub(crate) fn item(origin: &MemberId, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ITEM_HEADER + payload.len());
    out.extend_from_slice(origin.key_bytes());
    out.extend_from_slice(&origin.generation().to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// foca's side of the inbox.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handler(pub(crate) Arc<Mutex<Inbox>>);

impl Handler {
    pub(crate) fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // Nothing panics while holding it; a poisoned lock still holds
        // consistent data.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BroadcastHandler<MemberId> for Handler {
    type Key = ItemKey;
    type Error = ShortItem;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&MemberId>,
    ) -> Result<Option<ItemKey>, ShortItem> {
        self.inbox().accept(data, sender, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netproto_crypto::PublicKey;

    fn member(n: u8) -> MemberId {
        MemberId::new(
            &PublicKey::from_bytes([n; 32]),
            ([127, 0, 0, 1], 9).into(),
            3,
        )
    }

    #[test]
    fn an_item_is_delivered_once_and_names_its_origin() {
        let mut inbox = Inbox::new(8);
        let data = item(&member(1), 7, b"hello");
        assert!(matches!(
            inbox.accept(&data, Some(&member(2)), true),
            Ok(Some(_))
        ));
        assert!(matches!(
            inbox.accept(&data, Some(&member(3)), true),
            Ok(None)
        ));
        assert_eq!(inbox.received.len(), 1);
        let r = &inbox.received[0];
        assert_eq!((r.origin, &r.payload[..]), ([1; 32], &b"hello"[..]));
    }

    #[test]
    fn short_items_and_a_full_backlog_are_refused() {
        let mut inbox = Inbox {
            backlog: 1,
            ..Inbox::new(1)
        };
        assert!(inbox.accept(&[0; ITEM_HEADER], None, true).is_err());
        assert!(inbox.accept(&[0; 3], None, true).is_err());
        assert!(matches!(
            inbox.accept(&item(&member(1), 1, b"x"), Some(&member(2)), true),
            Ok(None)
        ));
        assert_eq!(inbox.refused, 1);
        // A direct copy is not gossiped, so the backlog does not apply.
        assert!(matches!(
            inbox.accept(&item(&member(1), 1, b"x"), Some(&member(2)), false),
            Ok(Some(_))
        ));
        // Our own item is remembered, not delivered to ourselves.
        assert!(matches!(
            inbox.accept(&item(&member(1), 2, b"y"), None, true),
            Ok(Some(_))
        ));
        assert_eq!(inbox.received.len(), 1);
    }
}
