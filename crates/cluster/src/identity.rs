//! Who a member is: its static key, where it listens, and which run of it.

use std::fmt;
use std::net::SocketAddr;

use netproto_crypto::PublicKey;
use serde::{Deserialize, Serialize};

/// A member's identity as the cluster gossips it.
///
/// The static X25519 key is the member (its sessions prove it); the address
/// says where to reach it; the generation tells runs of the same member
/// apart. A node picks a fresh generation when it starts (its wall clock in
/// milliseconds) and a higher one whenever the cluster declared it down, so
/// a member that died or was partitioned away can come back: SWIM never
/// revives an identity it declared down, it only accepts a newer one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberId {
    key: [u8; 32],
    addr: SocketAddr,
    generation: u64,
}

impl MemberId {
    /// A member identity.
    pub const fn new(key: &PublicKey, addr: SocketAddr, generation: u64) -> Self {
        Self {
            key: *key.as_bytes(),
            addr,
            generation,
        }
    }

    /// The member's static key.
    pub const fn key(&self) -> PublicKey {
        PublicKey::from_bytes(self.key)
    }

    pub(crate) const fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The address the member listens on.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which run of the member this is (higher is newer).
    pub const fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}#{}",
            self.key().fingerprint(),
            self.addr,
            self.generation
        )
    }
}

impl foca::Identity for MemberId {
    /// Two identities with the same key are the same member (a restart or a
    /// rejoin), whatever their address: foca then keeps the one that wins
    /// [`win_addr_conflict`](foca::Identity::win_addr_conflict).
    type Addr = [u8; 32];

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.saturating_add(1),
            ..*self
        })
    }

    fn addr(&self) -> [u8; 32] {
        self.key
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // The newer run wins; an equal generation with another address (two
        // processes sharing a key, a misconfiguration) is settled by the
        // address so every node picks the same one.
        (self.generation, self.addr) > (adversary.generation, adversary.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(generation: u64, port: u16) -> MemberId {
        MemberId::new(
            &PublicKey::from_bytes([7; 32]),
            SocketAddr::from(([127, 0, 0, 1], port)),
            generation,
        )
    }

    #[test]
    fn a_renewed_identity_is_newer_and_wins() {
        let old = id(5, 1);
        let new = old.renew().unwrap_or(old);
        assert_eq!(new.generation(), 6);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(new.addr, old.addr);
        assert_eq!(Identity::addr(&new), Identity::addr(&old));
    }

    #[test]
    fn the_encoding_is_the_one_docs_wire_md_gives() {
        let id = MemberId::new(
            &PublicKey::from_bytes([1; 32]),
            SocketAddr::from(([10, 0, 0, 1], 7000)),
            5,
        );
        let bytes = postcard::to_allocvec(&id).unwrap_or_default();
        let mut expected = vec![1u8; 32];
        expected.extend_from_slice(&[0x00, 0x0a, 0x00, 0x00, 0x01, 0xd8, 0x36, 0x05]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn an_equal_generation_is_settled_the_same_way_on_both_sides() {
        let (a, b) = (id(5, 1), id(5, 2));
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
    }
}
