//! Precedence (defaults < file < environment), every kind of error, and
//! network-protocol's documented configuration file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use netproto_config::{ConfigError, NetworkConfig};

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "netproto-config-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&p, text).unwrap();
    p
}

/// The keys and values of network-protocol 1.2's documented example
/// configuration (`docs/examples/example_config.toml`), comments and all.
const NETWORK_PROTOCOL_EXAMPLE: &str = r#"
# Example configuration file for network-protocol

# Server-specific configuration
[server]
address = "127.0.0.1:9000"
backpressure_limit = 32
connection_timeout = 5000    # milliseconds
heartbeat_interval = 15000   # milliseconds
shutdown_timeout = 10000     # milliseconds
max_connections = 1000

# Client-specific configuration
[client]
address = "127.0.0.1:9000"
connection_timeout = 5000    # milliseconds
operation_timeout = 3000     # milliseconds
response_timeout = 30000     # milliseconds
heartbeat_interval = 15000   # milliseconds
auto_reconnect = true
max_reconnect_attempts = 3
reconnect_delay = 1000       # milliseconds

# Transport configuration
[transport]
compression_enabled = false
encryption_enabled = true
max_payload_size = 16777216  # 16 MB in bytes
compression_level = 6        # Medium compression (range 1-9)

# Logging configuration
[logging]
app_name = "network-protocol"
log_level = "info"           # options: trace, debug, info, warn, error
log_to_console = true
log_to_file = false
log_file_path = ""           # leave empty for default log location
json_format = false
"#;

#[test]
fn network_protocol_config_loads_unchanged() {
    let cfg = NetworkConfig::from_toml(NETWORK_PROTOCOL_EXAMPLE).unwrap();
    assert_eq!(cfg.server.address, "127.0.0.1:9000");
    assert_eq!(cfg.server.heartbeat_interval, Duration::from_secs(15));
    assert_eq!(cfg.client.reconnect_delay, Duration::from_secs(1));
    assert_eq!(cfg.transport.compression_level, 6);
    assert_eq!(cfg.logging.app_name, "network-protocol");
}

#[test]
fn example_config_is_the_defaults() {
    let cfg = NetworkConfig::from_toml(netproto_config::example_config()).unwrap();
    assert_eq!(cfg, NetworkConfig::default());
    // And saving then loading is lossless.
    let path = temp_file("roundtrip", "");
    let mut changed = NetworkConfig::default();
    changed.server.max_connections = 7;
    changed.client.response_timeout = Duration::from_millis(1234);
    changed.tls.pins = vec!["spki-sha256:00ff".into(), "sha256//AAAA".into()];
    changed.tls.cert_path = "/etc/netproto/cert.pem".into();
    changed.tls.key_path = "/etc/netproto/key.pem".into();
    changed.tls.handshake_timeout = Duration::from_millis(2500);
    // Every section survives, [udp], [logging] and [metrics] included.
    changed.udp.max_datagram = 1400;
    changed.logging.format = netproto_config::LogFormat::Compact;
    changed.metrics.listen = "127.0.0.1:9100".into();
    changed.save_to_file(&path).unwrap();
    assert_eq!(NetworkConfig::from_file(&path).unwrap(), changed);
    std::fs::remove_file(path).unwrap();
}

fn message(e: &ConfigError) -> String {
    e.to_string()
}

#[test]
fn errors_name_the_key_and_source() {
    // Unknown key (a typo).
    let e = NetworkConfig::from_toml("[server]\nmax_conections = 5\n").unwrap_err();
    assert!(message(&e).contains("max_conections"), "{e}");
    // Wrong type, from a file: names the key and the file.
    let path = temp_file("wrongtype", "[server]\nmax_connections = \"many\"\n");
    let e = NetworkConfig::from_file(&path).unwrap_err();
    let m = message(&e);
    assert!(
        m.contains("max_connections") && m.contains(&path.display().to_string()),
        "{m}"
    );
    std::fs::remove_file(&path).unwrap();
    // TOML syntax error: names the line.
    let path = temp_file("syntax", "[server]\naddress = \n");
    let m = message(&NetworkConfig::from_file(&path).unwrap_err());
    assert!(m.contains("line 2") || m.contains("2:"), "{m}");
    std::fs::remove_file(&path).unwrap();
    // Out of range.
    let e = NetworkConfig::from_toml("[transport]\ncompression_level = 12\n").unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Invalid {
                key: "transport.compression_level",
                ..
            }
        ),
        "{e}"
    );
    let e = NetworkConfig::from_toml("[transport]\nencryption_enabled = false\n").unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Invalid {
                key: "transport.encryption_enabled",
                ..
            }
        ),
        "{e}"
    );
    let e = NetworkConfig::from_toml("[logging]\nlog_level = \"loud\"\n").unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Invalid {
                key: "logging.log_level",
                ..
            }
        ),
        "{e}"
    );
    // TLS settings that cannot work.
    for (toml, key) in [
        ("[tls]\ncert_path = \"c.pem\"\n", "tls.key_path"),
        (
            "[tls]\nclient_cert_path = \"c.pem\"\n",
            "tls.client_key_path",
        ),
        ("[tls]\npins_only = true\n", "tls.pins_only"),
        ("[tls]\npins = [\"md5:00\"]\n", "tls.pins"),
        (
            "[tls]\nmax_concurrent_handshakes = 0\n",
            "tls.max_concurrent_handshakes",
        ),
        // UDP settings out of range or inconsistent.
        ("[udp]\nmax_datagram = 100\n", "udp.max_datagram"),
        ("[udp]\nmax_message = 8388608\n", "udp.max_message"),
        ("[udp]\nmax_send_queue = 1000\n", "udp.max_send_queue"),
        ("[udp]\nmin_rto = 9000\n", "udp.max_rto"),
        ("[udp]\nper_source_rate = 0\n", "udp.per_source_rate"),
        ("[udp]\nkeep_alive = 30000\n", "udp.keep_alive"),
        ("[udp]\ndelivery = \"maybe\"\n", "udp.delivery"),
        ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen"),
    ] {
        let e = NetworkConfig::from_toml(toml).unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { key: k, .. } if k == key),
            "{toml}: {e}"
        );
    }
    // Missing file.
    assert!(matches!(
        NetworkConfig::from_file("/nonexistent/netproto.toml"),
        Err(ConfigError::Io { .. })
    ));
}

/// Enumerated values are enums: a wrong one fails with the allowed ones.
#[test]
fn enumerated_values_list_the_allowed_ones() {
    let m = message(&NetworkConfig::from_toml("[logging]\nformat = \"yaml\"\n").unwrap_err());
    assert!(
        m.contains("format") && m.contains("full") && m.contains("compact") && m.contains("json"),
        "{m}"
    );
    let m = message(
        &NetworkConfig::from_toml("[transport]\ncompression_algorithm = \"lz5\"\n").unwrap_err(),
    );
    assert!(
        m.contains("compression_algorithm") && m.contains("lz4") && m.contains("zstd"),
        "{m}"
    );
    let cfg = NetworkConfig::from_toml("[transport]\ncompression_algorithm = \"zstd\"\n").unwrap();
    assert_eq!(
        cfg.transport.compression_algorithm,
        netproto_config::CompressionAlgorithm::Zstd
    );
    let cfg = NetworkConfig::from_toml("[logging]\nformat = \"compact\"\n").unwrap();
    assert_eq!(
        cfg.logging.effective_format(),
        netproto_config::LogFormat::Compact
    );
    // network-protocol's switch still means JSON.
    let cfg = NetworkConfig::from_toml("[logging]\njson_format = true\n").unwrap();
    assert_eq!(
        cfg.logging.effective_format(),
        netproto_config::LogFormat::Json
    );
}

#[test]
fn ciphers_are_named_and_checked() {
    use netproto_config::NoiseCipher;
    let cfg = NetworkConfig::default();
    assert_eq!(cfg.transport.cipher, NoiseCipher::Auto);
    assert_eq!(
        cfg.transport.accepted_ciphers,
        [NoiseCipher::ChaChaPoly, NoiseCipher::AesGcm]
    );
    let cfg = NetworkConfig::from_toml(
        "[transport]\ncipher = \"aesgcm\"\naccepted_ciphers = [\"chachapoly\"]\n",
    )
    .unwrap();
    assert_eq!(cfg.transport.cipher, NoiseCipher::AesGcm);
    assert_eq!(cfg.transport.accepted_ciphers, [NoiseCipher::ChaChaPoly]);
    let m = message(&NetworkConfig::from_toml("[transport]\ncipher = \"aes128\"\n").unwrap_err());
    assert!(
        m.contains("cipher") && m.contains("chachapoly") && m.contains("aesgcm"),
        "{m}"
    );
    for bad in ["[]", "[\"auto\"]"] {
        let text = format!("[transport]\naccepted_ciphers = {bad}\n");
        let m = message(&NetworkConfig::from_toml(&text).unwrap_err());
        assert!(m.contains("transport.accepted_ciphers"), "{bad}: {m}");
    }
}

/// Environment variables are process-wide, so every env case runs in this one test.
#[test]
fn precedence_defaults_file_env() {
    let path = temp_file("precedence", "[server]\naddress = \"10.0.0.1:1\"\nmax_connections = 10\n[client]\nresponse_timeout = 2000\n");
    // File over defaults.
    let cfg = NetworkConfig::load(Some(&path)).unwrap();
    assert_eq!(cfg.server.address, "10.0.0.1:1");
    assert_eq!(cfg.server.max_connections, 10);
    assert_eq!(cfg.server.backpressure_limit, 32);
    // Environment over file.
    std::env::set_var("NP_SERVER_MAX_CONNECTIONS", "20");
    std::env::set_var("NP_LOGGING_LOG_LEVEL", "debug");
    std::env::set_var("NP_CLIENT_CONNECTION_TIMEOUT", "750");
    std::env::set_var("NP_UDP_MAX_DATAGRAM", "1400");
    let cfg = NetworkConfig::load(Some(&path)).unwrap();
    assert_eq!(cfg.udp.max_datagram, 1400);
    assert_eq!(cfg.server.max_connections, 20);
    assert_eq!(cfg.server.address, "10.0.0.1:1");
    assert_eq!(cfg.logging.log_level, "debug");
    assert_eq!(cfg.client.connection_timeout, Duration::from_millis(750));
    assert_eq!(cfg.client.response_timeout, Duration::from_secs(2));
    // A bad environment value names the variable's key.
    std::env::set_var("NP_SERVER_MAX_CONNECTIONS", "lots");
    let m = message(&NetworkConfig::from_env().unwrap_err());
    assert!(
        m.to_lowercase().contains("max_connections") && m.contains("NP_"),
        "{m}"
    );
    for v in [
        "NP_SERVER_MAX_CONNECTIONS",
        "NP_LOGGING_LOG_LEVEL",
        "NP_CLIENT_CONNECTION_TIMEOUT",
        "NP_UDP_MAX_DATAGRAM",
    ] {
        std::env::remove_var(v);
    }
    // The command line's own variables are not configuration keys.
    for v in netproto_config::CLI_VARIABLES {
        std::env::set_var(v, "/some/where");
    }
    assert_eq!(NetworkConfig::from_env().unwrap(), NetworkConfig::default());
    for v in netproto_config::CLI_VARIABLES {
        std::env::remove_var(v);
    }
    // A missing file is fine for load(): defaults and environment.
    assert_eq!(
        NetworkConfig::load(Some(std::path::Path::new("/nonexistent.toml"))).unwrap(),
        NetworkConfig::default()
    );
    std::fs::remove_file(path).unwrap();
}
