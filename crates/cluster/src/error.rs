//! The cluster's error type and the reasons it drops what peers send.

use netproto_transport_udp::UdpError;

use crate::MemberId;

/// Everything a cluster call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A setting is out of range.
    #[error("cluster config `{field}`: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The UDP sessions under the cluster failed.
    #[error(transparent)]
    Udp(#[from] UdpError),
    /// The socket could not be bound or used.
    #[error("cluster socket: {0}")]
    Io(#[from] std::io::Error),
    /// foca refused an operation (its own error, as text).
    #[error("membership engine: {0}")]
    Membership(String),
    /// The member is not alive in this node's view.
    #[error("{0} is not an alive member")]
    NotAMember(MemberId),
    /// The payload is larger than the cluster carries.
    #[error("{size} bytes is over the limit of {max}")]
    TooLarge {
        /// Bytes offered.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The node left the cluster or its task stopped.
    #[error("the cluster node has stopped")]
    Stopped,
}

impl ClusterError {
    pub(crate) fn membership(e: &foca::Error) -> Self {
        Self::Membership(e.to_string())
    }
}

/// Why a node dropped something a peer sent (counted in
/// [`crate::ClusterStats`] and the `netproto_cluster_dropped_total` metric
/// by this label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// A membership packet or state exchange that did not decode.
    Malformed,
    /// A membership packet whose sender identity is not the key that
    /// authenticated the session it came in.
    Impersonation,
    /// Gossip or state naming a key outside the allow-list.
    NotAllowed,
    /// foca refused the packet (not for us, from ourselves, bad layout).
    Refused,
    /// A message on a channel this version does not know.
    UnknownChannel,
    /// A packet for a member whose handshake was still running, over
    /// [`crate::ClusterConfig::max_queued_packets`], or a session that
    /// could not be opened.
    Unroutable,
    /// A broadcast over [`crate::ClusterConfig::max_broadcasts`].
    BroadcastsFull,
    /// An event the application did not take in time
    /// ([`crate::ClusterConfig::max_event_bytes`]).
    EventsFull,
    /// A state exchange with more than
    /// [`crate::ClusterConfig::max_members`] members.
    TooManyMembers,
}

impl DropReason {
    /// The metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Impersonation => "impersonation",
            Self::NotAllowed => "not_allowed",
            Self::Refused => "refused",
            Self::UnknownChannel => "unknown_channel",
            Self::Unroutable => "unroutable",
            Self::BroadcastsFull => "broadcasts_full",
            Self::EventsFull => "events_full",
            Self::TooManyMembers => "too_many_members",
        }
    }
}
