//! # netproto-config
//!
//! [`NetworkConfig`]: every setting of a netproto server and client, with
//! network-protocol's field names and defaults, loaded with figment from
//! defaults ← a TOML file ← environment variables `NP_SECTION_KEY`
//! (`NP_SERVER_ADDRESS`, `NP_LOGGING_LOG_LEVEL`, …). Durations are written in
//! milliseconds. Unknown keys, wrong types and out-of-range values are errors
//! that name the key and where the value came from.
//!
//! [`logging::init`] sets up `tracing` for applications; libraries never call it.
//!
//! ## Example
//!
//! ```
//! use netproto_config::NetworkConfig;
//!
//! let cfg = NetworkConfig::from_toml("[server]\naddress = \"127.0.0.1:9100\"\nmax_connections = 64\n")?;
//! assert_eq!(cfg.server.max_connections, 64);
//! assert_eq!(cfg.server.backpressure_limit, 32); // default
//! assert!(NetworkConfig::from_toml("[server]\nmax_conections = 1\n").is_err()); // typo: unknown key
//! # Ok::<(), netproto_config::ConfigError>(())
//! ```

use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod cipher;
pub mod logging;
mod metrics;
mod udp;

pub use cipher::NoiseCipher;
pub use metrics::MetricsSection;
pub use udp::UdpSection;

/// What went wrong loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is missing, of the wrong type, unknown, or does not parse; the
    /// message names the key and its source (file or environment variable).
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    /// A value parsed but is out of range.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The key, `section.name`.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The configuration file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::ms(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerSection {
    /// Listen address: `host:port` (TCP), `tcp://host:port` or `unix:///path`.
    pub address: String,
    /// Requests in flight per connection before reads pause.
    pub backpressure_limit: usize,
    /// Milliseconds a pinged peer has to answer (and the handshake limit).
    #[serde(with = "duration_ms")]
    pub connection_timeout: Duration,
    /// Milliseconds of silence before a ping.
    #[serde(with = "duration_ms")]
    pub heartbeat_interval: Duration,
    /// Milliseconds in-flight requests get at shutdown.
    #[serde(with = "duration_ms")]
    pub shutdown_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Bytes of requests in flight per connection before reads pause.
    pub backpressure_bytes: usize,
    /// Handshakes in progress at once, over all sources.
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one source (an IPv4 address or
    /// an IPv6 /64); a newer one preempts the oldest.
    pub max_handshakes_per_source: u32,
    /// Handshakes one source may start per second, on average.
    pub handshake_rate_per_source: u32,
    /// ... and in a burst.
    pub handshake_burst_per_source: u32,
    /// Bytes of unfinished (continued) requests, all connections together.
    pub max_reassembly_bytes: usize,
    /// Bytes of requests being handled, all connections together, beyond
    /// 64 KiB per connection.
    pub max_request_bytes: usize,
    /// Bytes of answers queued for slow readers, all connections together,
    /// beyond 64 KiB per connection.
    pub max_send_bytes: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:9000".into(),
            backpressure_limit: 32,
            connection_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 1000,
            backpressure_bytes: 4 * 1024 * 1024,
            max_handshakes: 512,
            max_handshakes_per_source: 64,
            handshake_rate_per_source: 200,
            handshake_burst_per_source: 500,
            max_reassembly_bytes: 64 * 1024 * 1024,
            max_request_bytes: 32 * 1024 * 1024,
            max_send_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The `[client]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ClientSection {
    /// Server address (as for `[server] address`).
    pub address: String,
    /// Milliseconds to connect and finish the handshake.
    #[serde(with = "duration_ms")]
    pub connection_timeout: Duration,
    /// Milliseconds a send may wait for queue room.
    #[serde(with = "duration_ms")]
    pub operation_timeout: Duration,
    /// Milliseconds a call waits for its response.
    #[serde(with = "duration_ms")]
    pub response_timeout: Duration,
    /// Milliseconds of silence before the client pings the server.
    #[serde(with = "duration_ms")]
    pub heartbeat_interval: Duration,
    /// Reconnect when the connection dies.
    pub auto_reconnect: bool,
    /// Reconnect attempts before giving up.
    pub max_reconnect_attempts: u32,
    /// Milliseconds before the first reconnect attempt.
    #[serde(with = "duration_ms")]
    pub reconnect_delay: Duration,
}

impl Default for ClientSection {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:9000".into(),
            connection_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(15),
            auto_reconnect: true,
            max_reconnect_attempts: 3,
            reconnect_delay: Duration::from_secs(1),
        }
    }
}

/// The `[transport]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TransportSection {
    /// Compress records (with `compression_algorithm`) when the peer supports it.
    pub compression_enabled: bool,
    /// `"lz4"` or `"zstd"`.
    pub compression_algorithm: CompressionAlgorithm,
    /// Records smaller than this many bytes are not compressed.
    pub compression_threshold: usize,
    /// Zstd level 1–9 (network-protocol's range).
    pub compression_level: i32,
    /// Must be `true`: netproto always encrypts (kept so network-protocol
    /// files load; `false` is refused rather than silently ignored).
    pub encryption_enabled: bool,
    /// Largest message accepted, in bytes.
    pub max_payload_size: usize,
    /// The Noise cipher a client chooses: `"auto"` (the faster on this
    /// CPU), `"chachapoly"` or `"aesgcm"`.
    pub cipher: NoiseCipher,
    /// The Noise ciphers a server accepts (both).
    pub accepted_ciphers: Vec<NoiseCipher>,
}

impl Default for TransportSection {
    fn default() -> Self {
        Self {
            compression_enabled: false,
            compression_algorithm: CompressionAlgorithm::Lz4,
            compression_threshold: 512,
            compression_level: 1,
            encryption_enabled: true,
            max_payload_size: 16 * 1024 * 1024,
            cipher: NoiseCipher::Auto,
            accepted_ciphers: cipher::all(),
        }
    }
}

/// The `[logging]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LoggingSection {
    /// Name shown in logs.
    pub app_name: String,
    /// `trace`, `debug`, `info`, `warn` or `error` (`RUST_LOG` overrides).
    pub log_level: String,
    /// Log to standard error.
    pub log_to_console: bool,
    /// Log to `log_file_path`.
    pub log_to_file: bool,
    /// Log file (empty: `<app_name>.log` in the working directory).
    pub log_file_path: String,
    /// How each event is written (`full`).
    pub format: LogFormat,
    /// One JSON object per line: `format = "json"` under network-protocol's
    /// name (either turns JSON on).
    pub json_format: bool,
}

/// The codec of `[transport] compression_algorithm`. A value that is not
/// one of these fails loading with an error that lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CompressionAlgorithm {
    /// LZ4: fast, modest ratio.
    #[default]
    Lz4,
    /// Zstandard at `compression_level`: slower, smaller.
    Zstd,
}

/// How log events are written (`[logging] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// One line per event: time, level, spans, message, fields.
    #[default]
    Full,
    /// One shorter line per event (span fields folded in).
    Compact,
    /// Several indented lines per event, for reading by eye.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// The name in the configuration file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Compact => "compact",
            Self::Pretty => "pretty",
            Self::Json => "json",
        }
    }
}

impl LoggingSection {
    /// The format in effect (`json_format = true` means JSON).
    pub const fn effective_format(&self) -> LogFormat {
        if self.json_format {
            LogFormat::Json
        } else {
            self.format
        }
    }
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            app_name: "netproto".into(),
            log_level: "info".into(),
            log_to_console: true,
            log_to_file: false,
            log_file_path: String::new(),
            format: LogFormat::Full,
            json_format: false,
        }
    }
}

/// The `[tls]` section: used when an address is `tls://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
// A TOML section of independent switches, not a state machine.
#[allow(clippy::struct_excessive_bools)]
pub struct TlsSection {
    /// Server: certificate chain, PEM (leaf first).
    pub cert_path: String,
    /// Server: private key of `cert_path`, PEM.
    pub key_path: String,
    /// Server: CA bundle for client certificates; set it for mutual TLS.
    pub client_ca_path: String,
    /// Server, with `client_ca_path`: refuse clients without a certificate.
    pub verify_client: bool,
    /// Client: CA bundle to trust (empty: the compiled-in Mozilla roots).
    pub ca_path: String,
    /// Client: name to verify and send as SNI (empty: the address's host).
    pub server_name: String,
    /// Client: certificate chain for mutual TLS, PEM.
    pub client_cert_path: String,
    /// Client: private key of `client_cert_path`, PEM.
    pub client_key_path: String,
    /// Client: certificate pins (`spki-sha256:<hex>`, `cert-sha256:<hex>`,
    /// `sha256//<base64>`); the server's certificate must match one.
    pub pins: Vec<String>,
    /// Client: trust the pins alone, without CA validation.
    pub pins_only: bool,
    /// Accept TLS 1.2 as well as 1.3.
    pub allow_tls12: bool,
    /// Also run the Noise handshake inside TLS (both sides must agree).
    pub noise_inside_tls: bool,
    /// Milliseconds a TLS handshake may take.
    #[serde(with = "duration_ms")]
    pub handshake_timeout: Duration,
    /// Server: TLS handshakes in progress at once.
    pub max_concurrent_handshakes: usize,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self {
            cert_path: String::new(),
            key_path: String::new(),
            client_ca_path: String::new(),
            verify_client: true,
            ca_path: String::new(),
            server_name: String::new(),
            client_cert_path: String::new(),
            client_key_path: String::new(),
            pins: Vec::new(),
            pins_only: false,
            allow_tls12: false,
            noise_inside_tls: false,
            handshake_timeout: Duration::from_secs(10),
            max_concurrent_handshakes: 1024,
        }
    }
}

/// All settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct NetworkConfig {
    /// `[server]`.
    pub server: ServerSection,
    /// `[client]`.
    pub client: ClientSection,
    /// `[transport]`.
    pub transport: TransportSection,
    /// `[tls]`.
    pub tls: TlsSection,
    /// `[udp]`.
    pub udp: UdpSection,
    /// `[logging]`.
    pub logging: LoggingSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
}

/// The `NP_*` variables that belong to the `netproto` command line, not to
/// this file's sections (`--config`, `--server-key`, `--known-hosts`): the
/// loader leaves them alone instead of refusing them as unknown keys.
pub const CLI_VARIABLES: [&str; 3] = ["NP_CONFIG", "NP_SERVER_KEY", "NP_KNOWN_HOSTS"];

/// The error for a configuration file that is named but absent.
fn no_such_file(path: &Path) -> ConfigError {
    ConfigError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    }
}

/// Maps `NP_SECTION_KEY` to `section.key` (keys keep their underscores),
/// skipping [`CLI_VARIABLES`].
fn env() -> Env {
    let own: Vec<String> = CLI_VARIABLES
        .iter()
        .map(|v| v.trim_start_matches("NP_").to_ascii_lowercase())
        .collect();
    Env::prefixed("NP_")
        .filter(move |key| !own.iter().any(|o| key.as_str().eq_ignore_ascii_case(o)))
        .map(|key| match key.as_str().split_once('_') {
            Some((section, rest)) => format!("{section}.{rest}").into(),
            None => key.into(),
        })
}

impl NetworkConfig {
    fn extract(figment: &Figment) -> Result<Self, ConfigError> {
        let cfg: Self = figment.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn base() -> Figment {
        Figment::from(Serialized::defaults(Self::default()))
    }

    /// Defaults overridden by the TOML file at `path` (which must exist).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(no_such_file(path));
        }
        Self::extract(&Self::base().merge(Toml::file(path)))
    }

    /// Defaults overridden by TOML text.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::extract(&Self::base().merge(Toml::string(text)))
    }

    /// Defaults overridden by `NP_*` environment variables.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::extract(&Self::base().merge(env()))
    }

    /// Defaults ← the file at `path` if it exists ← `NP_*` variables.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and its source.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Self::base();
        if let Some(p) = path {
            if p.exists() {
                figment = figment.merge(Toml::file(p));
            }
        }
        Self::extract(&figment.merge(env()))
    }

    /// As [`NetworkConfig::load`], but a file that is named must exist (what
    /// a command line's `--config` wants: a typo is an error, not the
    /// defaults).
    ///
    /// # Errors
    /// [`ConfigError::Io`] if `path` names no file; otherwise as
    /// [`NetworkConfig::load`].
    pub fn load_existing(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) if !p.exists() => Err(no_such_file(p)),
            _ => Self::load(path),
        }
    }

    /// Defaults changed by `f`, validated.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if `f` left a value out of range.
    pub fn default_with_overrides(f: impl FnOnce(&mut Self)) -> Result<Self, ConfigError> {
        let mut cfg = Self::default();
        f(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and consistency.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for the first bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        for (key, addr) in [
            ("server.address", &self.server.address),
            ("client.address", &self.client.address),
        ] {
            if addr.trim().is_empty() {
                return bad(key, "must not be empty");
            }
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections", "must be at least 1");
        }
        self.metrics.listen_addr()?;
        let at_least_one = [
            ("server.backpressure_limit", self.server.backpressure_limit),
            ("server.backpressure_bytes", self.server.backpressure_bytes),
            ("server.max_handshakes", self.server.max_handshakes),
            (
                "server.max_handshakes_per_source",
                self.server.max_handshakes_per_source as usize,
            ),
            (
                "server.handshake_rate_per_source",
                self.server.handshake_rate_per_source as usize,
            ),
            (
                "server.handshake_burst_per_source",
                self.server.handshake_burst_per_source as usize,
            ),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        // A budget smaller than one message would refuse every message of
        // that size.
        for (key, value) in [
            (
                "server.max_reassembly_bytes",
                self.server.max_reassembly_bytes,
            ),
            ("server.max_request_bytes", self.server.max_request_bytes),
            ("server.max_send_bytes", self.server.max_send_bytes),
        ] {
            if value < self.transport.max_payload_size {
                return bad(key, "must be at least transport.max_payload_size");
            }
        }
        let positive = [
            ("server.connection_timeout", self.server.connection_timeout),
            ("server.heartbeat_interval", self.server.heartbeat_interval),
            ("client.connection_timeout", self.client.connection_timeout),
            ("client.operation_timeout", self.client.operation_timeout),
            ("client.response_timeout", self.client.response_timeout),
            ("client.heartbeat_interval", self.client.heartbeat_interval),
        ];
        for (key, d) in positive {
            if d.is_zero() {
                return bad(key, "must be more than 0 ms");
            }
        }
        if !(1..=9).contains(&self.transport.compression_level) {
            return bad("transport.compression_level", "must be from 1 to 9");
        }
        if !self.transport.encryption_enabled {
            return bad(
                "transport.encryption_enabled",
                "netproto always encrypts; unencrypted sessions are not offered",
            );
        }
        if !(1024..=u32::MAX as usize).contains(&self.transport.max_payload_size) {
            return bad(
                "transport.max_payload_size",
                "must be from 1024 bytes to 4 GiB",
            );
        }
        if let Err(reason) = cipher::check_accepted(&self.transport.accepted_ciphers) {
            return bad("transport.accepted_ciphers", reason);
        }
        self.validate_tls()?;
        self.udp.validate()?;
        if !matches!(
            self.logging.log_level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) {
            return bad(
                "logging.log_level",
                "must be trace, debug, info, warn or error",
            );
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        let bad = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if t.cert_path.is_empty() != t.key_path.is_empty() {
            return bad(
                "tls.key_path",
                "cert_path and key_path must be set together",
            );
        }
        if t.client_cert_path.is_empty() != t.client_key_path.is_empty() {
            return bad(
                "tls.client_key_path",
                "client_cert_path and client_key_path must be set together",
            );
        }
        if t.pins_only && t.pins.is_empty() {
            return bad("tls.pins_only", "needs at least one pin in tls.pins");
        }
        if let Some(p) = t.pins.iter().find(|p| {
            !(p.starts_with("spki-sha256:")
                || p.starts_with("cert-sha256:")
                || p.starts_with("sha256//"))
        }) {
            return bad(
                "tls.pins",
                &format!("{p:?}: use spki-sha256:<hex>, cert-sha256:<hex> or sha256//<base64>"),
            );
        }
        if t.handshake_timeout.is_zero() {
            return bad("tls.handshake_timeout", "must be more than 0 ms");
        }
        if t.max_concurrent_handshakes == 0 {
            return bad("tls.max_concurrent_handshakes", "must be at least 1");
        }
        Ok(())
    }

    /// Writes the configuration as TOML.
    ///
    /// # Errors
    /// [`ConfigError::Io`]; [`ConfigError::Invalid`] as [`Self::to_toml`].
    pub fn save_to_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_toml()?).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The configuration as TOML text (every section, durations in
    /// milliseconds), written by serde from the same fields it is read
    /// into, so the two cannot drift apart.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] (`config`) if a value has no TOML form.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Invalid {
            key: "config",
            reason: format!("cannot be written as TOML: {e}"),
        })
    }
}

/// A commented TOML file with every key at its default.
pub fn example_config() -> &'static str {
    include_str!("example.toml")
}

/// `host:port` → `tcp://host:port`; anything with a scheme (`tcp://`,
/// `unix://`, `tls://`) is kept.
pub fn endpoint_string(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("tcp://{address}")
    }
}
