//! The `[metrics]` section: where `netproto serve` answers Prometheus
//! scrapes (docs/METRICS.md).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The `[metrics]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MetricsSection {
    /// `ip:port` to answer `GET /metrics` on, for example `127.0.0.1:9100`
    /// (port 0 picks a free one); empty: no endpoint (the default).
    pub listen: String,
}

impl MetricsSection {
    /// The address to listen on, if one is set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] (`metrics.listen`) if it is not `ip:port`.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let listen = self.listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        listen.parse().map(Some).map_err(|_| ConfigError::Invalid {
            key: "metrics.listen",
            reason: format!(
                "{listen:?} is not ip:port (for example 127.0.0.1:9100), or empty for none"
            ),
        })
    }
}
