//! What a cluster node is told: timing preset, who may join, limits.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use netproto_crypto::PublicKey;
use netproto_transport_udp::UdpConfig;

use crate::ClusterError;

/// foca's timing presets (derived from memberlist's LAN and WAN defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Preset {
    /// Probe every 1 s, direct-probe RTT 500 ms, 3 indirect probes, gossip
    /// every 200 ms to 3 members, suspect → down after
    /// max(1, log10 n) × 4 s: a dead member is reported down in ≈ 7 s in a
    /// cluster of 5 (15 s at worst).
    #[default]
    Lan,
    /// Probe every 5 s, RTT 3 s, gossip every 500 ms to 4,
    /// suspect → down after max(1, log10 n) × 30 s.
    Wan,
}

/// Who may be a member.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Admission {
    /// Only these static keys: sessions with any other key are refused in
    /// the handshake, and gossip naming another key is dropped whole.
    AllowList(Vec<PublicKey>),
    /// Any key that completes the handshake. Traffic is encrypted and every
    /// packet's sender is authenticated, but anybody who can reach the port
    /// can join: for development and closed networks only (logged as a
    /// warning when a node starts).
    Open,
}

/// A cluster node's settings. `Default` is the LAN preset for a cluster of
/// up to 8 with open admission; production deployments set an allow-list.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Timing preset.
    pub preset: Preset,
    /// Expected number of members (scales foca's suspicion timeout and how
    /// often an update is retransmitted): 8.
    pub expected_size: u32,
    /// Who may join.
    pub admission: Admission,
    /// Full-state exchange with one random known member (down ones
    /// included) this often, so partitions heal and news nobody gossips any
    /// more still spreads: 30 s (memberlist's push/pull interval). `None`
    /// turns it off.
    pub sync_interval: Option<Duration>,
    /// Most members a state exchange may carry; a larger one is dropped
    /// whole: 1,024.
    pub max_members: usize,
    /// Most foca packets held for a member while its session's handshake
    /// runs (more are dropped, as a lossy network would): 16.
    pub max_queued_packets: usize,
    /// Most custom broadcasts in flight (being gossiped) at once; newer
    /// ones from peers are dropped and counted: 256.
    pub max_broadcasts: usize,
    /// Bytes of events (broadcasts and messages) held for the application
    /// before the oldest are dropped and counted: 4 MiB.
    pub max_event_bytes: usize,
    /// The UDP sessions under the cluster.
    pub udp: UdpConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            preset: Preset::Lan,
            expected_size: 8,
            admission: Admission::Open,
            sync_interval: Some(Duration::from_secs(30)),
            max_members: 1024,
            max_queued_packets: 16,
            max_broadcasts: 256,
            max_event_bytes: 4 << 20,
            udp: UdpConfig::default(),
        }
    }
}

/// Bytes of a datagram that are not foca's packet: the envelope (16), the
/// AEAD tag (16), the piece header (≤ 20) and the frame header (≤ 12), with
/// room to spare. A foca packet of `max_datagram − 96` bytes travels in one
/// datagram (tested).
pub(crate) const PACKET_OVERHEAD: usize = 96;

impl ClusterConfig {
    /// The LAN preset with an allow-list: the production default.
    pub fn lan(allow: impl IntoIterator<Item = PublicKey>) -> Self {
        Self {
            admission: Admission::AllowList(allow.into_iter().collect()),
            ..Self::default()
        }
    }

    /// The largest foca packet: one datagram's worth.
    pub const fn max_packet(&self) -> usize {
        self.udp.max_datagram.saturating_sub(PACKET_OVERHEAD)
    }

    /// Checks the values and builds foca's configuration.
    ///
    /// # Errors
    /// [`ClusterError::Config`] naming the field.
    pub(crate) fn foca(&self) -> Result<foca::Config, ClusterError> {
        let bad = |field: &'static str, reason: &str| ClusterError::Config {
            field,
            reason: reason.to_owned(),
        };
        let size = NonZeroU32::new(self.expected_size)
            .ok_or_else(|| bad("expected_size", "must be at least 1"))?;
        let max_packet = NonZeroUsize::new(self.max_packet())
            .filter(|n| n.get() >= 256)
            .ok_or_else(|| {
                bad(
                    "udp.max_datagram",
                    "leaves under 256 bytes for a membership packet",
                )
            })?;
        if self.max_members < 2 || self.max_members > usize::from(u16::MAX) {
            return Err(bad("max_members", "must be in 2..=65535"));
        }
        if self.max_queued_packets == 0 {
            return Err(bad("max_queued_packets", "must be at least 1"));
        }
        if self
            .sync_interval
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            return Err(bad("sync_interval", "must be at least 1 s"));
        }
        if let Admission::AllowList(keys) = &self.admission {
            if keys.is_empty() {
                return Err(bad("admission", "the allow-list is empty"));
            }
        }
        let mut cfg = match self.preset {
            Preset::Lan => foca::Config::new_lan(size),
            Preset::Wan => foca::Config::new_wan(size),
        };
        cfg.max_packet_size = max_packet;
        Ok(cfg)
    }
}
