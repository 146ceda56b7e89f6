//! The `[udp]` section and the UDP carrier agree: one set of defaults.
#![cfg(feature = "udp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use netproto::{udp::UdpConfig, Delivery, NetworkConfig};

#[test]
fn udp_section_defaults_are_the_carriers() {
    let cfg = NetworkConfig::default();
    assert_eq!(
        format!("{:?}", netproto::udp_config(&cfg)),
        format!("{:?}", UdpConfig::default())
    );
    assert_eq!(netproto::udp_delivery(&cfg), Delivery::Ordered);
}

#[test]
fn udp_section_reaches_the_carrier() {
    let cfg = NetworkConfig::from_toml(
        "[udp]\nmax_datagram = 1400\nkeep_alive = 0\ndelivery = \"unreliable\"\n",
    )
    .unwrap();
    let udp = netproto::udp_config(&cfg);
    assert_eq!(udp.max_datagram, 1400);
    assert_eq!(udp.keep_alive, None);
    assert_eq!(netproto::udp_delivery(&cfg), Delivery::Unreliable);
}

#[tokio::test]
async fn a_udp_server_needs_its_key() {
    let mut cfg = NetworkConfig::default();
    cfg.server.address = "udp://127.0.0.1:0".into();
    let e = netproto::bind(&cfg, None).await.unwrap_err();
    assert!(
        matches!(
            e,
            netproto::Error::Config(netproto::ConfigError::Invalid {
                key: "server.address",
                ..
            })
        ),
        "{e}"
    );
    let key = netproto::Keypair::generate(&mut rand::rngs::OsRng);
    let server =
        netproto::server_config(&cfg, key, std::sync::Arc::new(netproto::AnyPeer)).unwrap();
    let listener = netproto::bind(&cfg, Some(&server.connection.handshake))
        .await
        .unwrap();
    assert!(listener
        .local_endpoint()
        .to_string()
        .starts_with("udp://127.0.0.1:"));
}
