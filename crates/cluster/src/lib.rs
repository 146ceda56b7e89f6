//! # netproto-cluster
//!
//! Cluster membership for netproto: who is alive, who failed, who joined —
//! SWIM failure detection and gossip from [foca], carried inside
//! authenticated, encrypted netproto UDP sessions.
//!
//! foca brings the protocol and no security; this crate brings the rest:
//! every foca packet travels sealed in a session with the member itself
//! (the Noise handshake proves its static key), a packet whose claimed
//! sender is not that key is dropped and counted, replayed datagrams die in
//! the session's anti-replay window, and an allow-list keeps other keys out
//! of the handshake and out of gossip. A member is its static key, its
//! address and a generation ([`MemberId`]), so a node that failed or was
//! partitioned away rejoins as a newer run.
//!
//! [`Node`] is sans-IO (datagrams, `now` and randomness in; datagrams,
//! events and a deadline out), so multi-node scenarios run in virtual time
//! on a simulated network; [`Cluster`] is the tokio driver that owns a
//! socket.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use netproto_cluster::{ClusterConfig, Node};
//! use netproto_crypto::Keypair;
//!
//! # fn main() -> Result<(), netproto_cluster::ClusterError> {
//! let mut rng = rand::rngs::OsRng;
//! let (a_key, b_key) = (Keypair::generate(&mut rng), Keypair::generate(&mut rng));
//! let cfg = ClusterConfig::lan([*a_key.public(), *b_key.public()]);
//! let (a_addr, b_addr) = ("10.0.0.1:7000".parse().unwrap(), "10.0.0.2:7000".parse().unwrap());
//! let (mut now, wall) = (Instant::now(), Duration::from_secs(1_700_000_000));
//! let mut a = Node::new(cfg.clone(), a_key, a_addr, Box::new(rng), now, wall)?;
//! let mut b = Node::new(cfg, b_key, b_addr, Box::new(rng), now, wall)?;
//! b.join(now, &[a_addr])?;
//! // A driver's whole job: move datagrams and time along.
//! for _ in 0..50 {
//!     while let Some(mut t) = a.poll_transmit(now) { b.handle_datagram(now, a_addr, &mut t.contents); }
//!     while let Some(mut t) = b.poll_transmit(now) { a.handle_datagram(now, b_addr, &mut t.contents); }
//!     now += Duration::from_millis(10);
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//! }
//! assert_eq!(a.active_members(), vec![b.id()]);
//! assert_eq!(b.active_members(), vec![a.id()]);
//! # Ok(())
//! # }
//! ```
//!
//! [foca]: https://docs.rs/foca

mod broadcast;
mod codec;
mod config;
mod driver;
mod error;
mod identity;
mod links;
mod node;
mod sync;
mod view;

pub use config::{Admission, ClusterConfig, Preset};
pub use driver::Cluster;
pub use error::{ClusterError, DropReason};
pub use identity::MemberId;
pub use node::{ClusterStats, Node};
pub use view::{ClusterEvent, Member, MemberState};
