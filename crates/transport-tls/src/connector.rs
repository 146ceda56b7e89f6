//! [`TlsConnector`]: opens `tls://` connections for clients.

use std::sync::Arc;
use std::time::Duration;

use crate::config::TlsClientConfig;
use crate::error::{handshake_error, TlsError};
use crate::stream::TlsClientStream;
use netproto_transport::{
    dial_stream, BoxFuture, Connection, ConnectionConfig, DefaultTransport, Dial, Endpoint,
    TimeoutKind, TransportError,
};
use rustls_pki_types::ServerName;

/// Connects to `tls://host:port` endpoints: TCP, then a TLS handshake within
/// the configured timeout, verifying the server by CA chain and/or pins.
///
/// Put it in `ConnectionConfig::dialer` so that `connect`, the service
/// layer's `Client` and `ConnectionPool` use it (as a [`Dial`] it opens
/// `tcp://` and `unix://` endpoints too, without TLS); or call
/// [`TlsConnector::connect_tls`] for raw TLS streams.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
    handshake_timeout: Duration,
    tcp: DefaultTransport,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::BadServerName(name.to_owned()))
}

impl TlsConnector {
    /// Builds a connector from settings (reads the CA, pin and client
    /// certificate files now).
    ///
    /// # Errors
    /// As [`TlsClientConfig::build`]; [`TlsError::BadServerName`].
    pub fn new(cfg: &TlsClientConfig) -> Result<Self, TlsError> {
        let connector = Self::with_rustls(cfg.build()?, cfg.handshake_timeout);
        match &cfg.server_name {
            Some(name) => connector.with_server_name(name),
            None => Ok(connector),
        }
    }

    /// A connector over a rustls configuration built elsewhere.
    pub fn with_rustls(config: Arc<rustls::ClientConfig>, handshake_timeout: Duration) -> Self {
        Self {
            inner: tokio_rustls::TlsConnector::from(config),
            server_name: None,
            handshake_timeout,
            tcp: DefaultTransport::default(),
        }
    }

    /// Verifies and sends `name` as SNI instead of the endpoint's host (to
    /// dial an IP address for a named certificate, for example).
    ///
    /// # Errors
    /// [`TlsError::BadServerName`].
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsError> {
        self.server_name = Some(server_name(name)?);
        Ok(self)
    }

    /// Opens a TLS stream to `endpoint` (`tls://host:port`).
    ///
    /// # Errors
    /// [`TransportError::BadEndpoint`] for other schemes or a host that is no
    /// valid server name; I/O errors; [`TransportError::Tls`] with the reason
    /// (unknown CA, expired, name mismatch, pin mismatch, …);
    /// [`TransportError::Timeout`] ([`TimeoutKind::Handshake`]).
    pub async fn connect_tls(
        &self,
        endpoint: &Endpoint,
    ) -> Result<TlsClientStream, TransportError> {
        let (Endpoint::Tls { host, .. }, Some(tcp_endpoint)) = (endpoint, endpoint.tls_to_tcp())
        else {
            return Err(TransportError::BadEndpoint {
                input: endpoint.to_string(),
                reason: "a TLS connector connects to tls://host:port endpoints",
            });
        };
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => server_name(host).map_err(|_| TransportError::BadEndpoint {
                input: endpoint.to_string(),
                reason: "the host is not a valid TLS server name; set server_name",
            })?,
        };
        let tcp = self.tcp.connect(&tcp_endpoint).await?;
        match tokio::time::timeout(self.handshake_timeout, self.inner.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(TlsClientStream::new(tls)),
            Ok(Err(e)) => {
                let e = handshake_error(e);
                tracing::warn!(%endpoint, error = %e, "TLS handshake failed");
                Err(e)
            }
            Err(_) => Err(TransportError::Timeout {
                kind: TimeoutKind::Handshake,
                after: self.handshake_timeout,
            }),
        }
    }
}

/// Dials `tls://` endpoints (and `tcp://` / `unix://` without TLS, so one
/// dialer serves a client that talks to both kinds).
impl Dial for TlsConnector {
    fn dial<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        cfg: ConnectionConfig,
    ) -> BoxFuture<'a, Result<Connection, TransportError>> {
        Box::pin(async move {
            match endpoint {
                Endpoint::Tls { .. } => dial_stream(self.connect_tls(endpoint), cfg).await,
                _ => dial_stream(self.tcp.connect(endpoint), cfg).await,
            }
        })
    }
}
