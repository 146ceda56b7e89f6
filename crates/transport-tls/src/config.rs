//! Server and client TLS settings, and how they become rustls configurations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{RootCertStore, SupportedProtocolVersion};

use crate::error::TlsError;
use crate::pem::{load_certs, load_private_key, load_roots};
use crate::pin::CertPin;
use crate::verify::PinningVerifier;

/// The ALPN protocol netproto speaks inside TLS.
pub const ALPN_NETPROTO: &[u8] = b"netproto/1";

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&TLS13];
static TLS13_AND_12: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];

fn versions(allow_tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    if allow_tls12 {
        &TLS13_AND_12
    } else {
        &TLS13_ONLY
    }
}

/// TLS settings of a server. Defaults in parentheses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsServerConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// PEM bundle of the CAs that issue client certificates: set it for
    /// mutual TLS (`None`).
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a certificate (true). When
    /// false, a client may connect anonymously, but a certificate it does
    /// present must verify.
    pub verify_client: bool,
    /// Accept TLS 1.2 as well as 1.3 (false).
    pub allow_tls12: bool,
    /// ALPN protocols offered (`netproto/1`). A client offering none of them
    /// is refused; a client offering no ALPN at all is served.
    pub alpn: Vec<Vec<u8>>,
    /// A TLS handshake must finish within this (10 s).
    pub handshake_timeout: Duration,
    /// TLS handshakes running at once; a connection arriving beyond it is
    /// closed at once, so accepting never waits (1024: above a netproto
    /// `Server`'s own handshake budget of 512, so that under the service
    /// its admission, which makes room by dropping the oldest stalled
    /// handshake, decides rather than this cap, which can only refuse).
    pub max_concurrent_handshakes: usize,
}

impl TlsServerConfig {
    /// Defaults with the given certificate chain and key files.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            client_ca: None,
            verify_client: true,
            allow_tls12: false,
            alpn: vec![ALPN_NETPROTO.to_vec()],
            handshake_timeout: Duration::from_secs(10),
            max_concurrent_handshakes: 1024,
        }
    }

    /// Requires client certificates issued by the CAs in `ca_bundle`.
    #[must_use]
    pub fn with_client_ca(mut self, ca_bundle: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(ca_bundle.into());
        self.verify_client = true;
        self
    }

    /// Reads the files and builds the rustls configuration.
    ///
    /// # Errors
    /// [`TlsError::File`] / [`TlsError::Pem`] naming the file at fault;
    /// [`TlsError::Settings`] when rustls refuses them (for example a key
    /// that does not belong to the certificate).
    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = provider();
        let chain = load_certs(&self.cert_chain)?;
        let key = load_private_key(&self.private_key)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(self.allow_tls12))?;
        let builder = match &self.client_ca {
            Some(path) => {
                let roots = Arc::new(load_roots(path)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if self.verify_client {
                    verifier.build()
                } else {
                    verifier.allow_unauthenticated().build()
                }
                .map_err(|e| TlsError::Settings(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder.with_single_cert(chain, key)?;
        cfg.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(cfg))
    }
}

/// Which CAs a client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roots {
    /// The certificates in a PEM bundle (a private CA, a self-signed
    /// certificate, or the system bundle such as
    /// `/etc/ssl/certs/ca-certificates.crt`).
    File(PathBuf),
    /// The Mozilla root program, compiled in (webpki-roots).
    WebPki,
    /// No chain validation: only the pins decide. Valid only with at least
    /// one pin; expiry and names are then not checked.
    PinsOnly,
}

/// TLS settings of a client. Defaults in parentheses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsClientConfig {
    /// Trusted CAs (`Roots::WebPki`).
    pub roots: Roots,
    /// The name to verify and send as SNI (the endpoint's host).
    pub server_name: Option<String>,
    /// PEM certificate chain presented for mutual TLS (`None`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// The leaf must match one of these, in addition to chain validation
    /// (or instead of it with [`Roots::PinsOnly`]) (none).
    pub pins: Vec<CertPin>,
    /// Accept TLS 1.2 as well as 1.3 (false).
    pub allow_tls12: bool,
    /// ALPN protocols offered (`netproto/1`).
    pub alpn: Vec<Vec<u8>>,
    /// The TLS handshake must finish within this (10 s).
    pub handshake_timeout: Duration,
}

impl Default for TlsClientConfig {
    fn default() -> Self {
        Self {
            roots: Roots::WebPki,
            server_name: None,
            client_cert: None,
            client_key: None,
            pins: Vec::new(),
            allow_tls12: false,
            alpn: vec![ALPN_NETPROTO.to_vec()],
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl TlsClientConfig {
    /// Defaults trusting the CAs in a PEM bundle.
    pub fn with_ca_file(path: impl Into<PathBuf>) -> Self {
        Self {
            roots: Roots::File(path.into()),
            ..Self::default()
        }
    }

    /// Presents a client certificate (mutual TLS).
    #[must_use]
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Adds a pin.
    #[must_use]
    pub fn with_pin(mut self, pin: CertPin) -> Self {
        self.pins.push(pin);
        self
    }

    /// Reads the files and builds the rustls configuration.
    ///
    /// # Errors
    /// As [`TlsServerConfig::build`]; [`TlsError::Settings`] for
    /// [`Roots::PinsOnly`] without pins, or a client certificate without its
    /// key (or the reverse).
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = provider();
        let chain =
            match &self.roots {
                Roots::File(path) => Some(load_roots(path)?),
                Roots::WebPki => Some(RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                }),
                Roots::PinsOnly if self.pins.is_empty() => return Err(TlsError::Settings(
                    "Roots::PinsOnly needs at least one pin: otherwise any certificate would do"
                        .into(),
                )),
                Roots::PinsOnly => None,
            };
        let chain = chain
            .map(|roots| {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Settings(e.to_string()))
            })
            .transpose()?;
        let verifier = Arc::new(PinningVerifier {
            chain,
            pins: self.pins.clone(),
            provider: provider.clone(),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions(self.allow_tls12))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut cfg = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(load_certs(cert)?, load_private_key(key)?)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Settings(
                    "client_cert and client_key must be set together".into(),
                ))
            }
        };
        cfg.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(cfg))
    }
}
