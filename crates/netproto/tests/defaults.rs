//! One source of defaults: a `NetworkConfig::default()` turned into service
//! settings (`netproto::server_config`, `netproto::client_config`) gives the
//! same values as the service's and transport's own constructors
//! (`ServerConfig::new`, `ClientConfig::new`, `ConnectionConfig::new`), so
//! a program that starts from a config file and one that starts from code
//! behave alike (issue #21).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use netproto::{
    AnyPeer, ClientConfig, ConnectionConfig, HandshakeConfig, Keypair, NetworkConfig, ServerConfig,
};

fn key() -> Keypair {
    Keypair::generate(&mut rand::rngs::OsRng)
}

fn fresh_connection() -> ConnectionConfig {
    ConnectionConfig::new(HandshakeConfig::new(Some(key()), Arc::new(AnyPeer)))
}

/// The connection settings both paths must agree on.
fn connection_figures(c: &ConnectionConfig) -> String {
    format!(
        "connect {:?} keep_alive {:?} idle {:?} packet {:?} write {:?} max_message {} \
         message {:?} send_buffer {} compression {:?} rekey {:?} noise_inside_tls {} \
         pattern {:?} capabilities {:?}",
        c.connect_timeout,
        c.keep_alive,
        c.idle_timeout,
        c.packet_timeout,
        c.write_timeout,
        c.max_message_size,
        c.message_timeout,
        c.send_buffer,
        c.compression,
        c.rekey,
        c.noise_inside_tls,
        c.handshake.pattern,
        c.handshake.capabilities,
    )
}

#[test]
fn server_defaults_are_the_same_from_a_file_and_from_code() {
    let from_file =
        netproto::server_config(&NetworkConfig::default(), key(), Arc::new(AnyPeer)).unwrap();
    let from_code = ServerConfig::new(from_file.address.clone(), fresh_connection());
    assert_eq!(from_file.max_connections, from_code.max_connections);
    assert_eq!(from_file.backpressure_limit, from_code.backpressure_limit);
    assert_eq!(from_file.heartbeat_interval, from_code.heartbeat_interval);
    assert_eq!(from_file.connection_timeout, from_code.connection_timeout);
    assert_eq!(from_file.shutdown_timeout, from_code.shutdown_timeout);
    assert_eq!(from_file.max_handshakes, from_code.max_handshakes);
    assert_eq!(
        from_file.max_handshakes_per_source,
        from_code.max_handshakes_per_source
    );
    assert!(
        (from_file.handshake_rate_per_source - from_code.handshake_rate_per_source).abs() < 1e-9
    );
    assert_eq!(
        from_file.handshake_burst_per_source,
        from_code.handshake_burst_per_source
    );
    assert_eq!(
        from_file.max_reassembly_bytes,
        from_code.max_reassembly_bytes
    );
    assert_eq!(from_file.max_request_bytes, from_code.max_request_bytes);
    assert_eq!(from_file.max_send_bytes, from_code.max_send_bytes);
    assert_eq!(from_file.backpressure_bytes, from_code.backpressure_bytes);
    assert_eq!(
        connection_figures(&from_file.connection),
        connection_figures(&from_code.connection)
    );
    // 5 s on both paths: `server.connection_timeout` in the file, the
    // server's own default in code.
    assert_eq!(
        from_file.connection.handshake_timeout,
        from_code.connection.handshake_timeout
    );
}

#[test]
fn client_defaults_are_the_same_from_a_file_and_from_code() {
    let from_file =
        netproto::client_config(&NetworkConfig::default(), Some(key()), Arc::new(AnyPeer)).unwrap();
    let from_code = ClientConfig::new(fresh_connection());
    assert_eq!(from_file.connection_timeout, from_code.connection_timeout);
    assert_eq!(from_file.operation_timeout, from_code.operation_timeout);
    assert_eq!(from_file.response_timeout, from_code.response_timeout);
    assert_eq!(from_file.heartbeat_interval, from_code.heartbeat_interval);
    assert_eq!(from_file.auto_reconnect, from_code.auto_reconnect);
    assert_eq!(
        from_file.max_reconnect_attempts,
        from_code.max_reconnect_attempts
    );
    assert_eq!(from_file.reconnect_delay, from_code.reconnect_delay);
    assert_eq!(from_file.max_reconnect_delay, from_code.max_reconnect_delay);
    assert_eq!(from_file.send_delivery, from_code.send_delivery);
    assert_eq!(
        connection_figures(&from_file.connection),
        connection_figures(&from_code.connection)
    );
}
