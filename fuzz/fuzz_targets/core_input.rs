//! Feeds arbitrary bytes to a connection core as a peer's stream: a server
//! waiting for the first handshake message, a TLS server waiting for the
//! capability hello, or an established server (the input then follows a
//! genuine record). Nothing may panic; every failure must be a typed error
//! that the core then keeps returning.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
use netproto_transport::core::{Core, Event, Role};
use netproto_transport::{ConnectionConfig, StreamSecurity};
use rand::SeedableRng;

const WALL: Duration = Duration::from_secs(1_800_000_000);

fn rng(seed: u64) -> Box<rand::rngs::StdRng> {
    Box::new(rand::rngs::StdRng::seed_from_u64(seed))
}

fn configs() -> (ConnectionConfig, ConnectionConfig) {
    let mut r = rand::rngs::StdRng::seed_from_u64(7);
    let server_key = Keypair::generate(&mut r);
    let server_pub = *server_key.public();
    let server = ConnectionConfig::new(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)));
    let client = ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut r)),
        Arc::new(Pinned(server_pub)),
    ));
    (client, server)
}

/// An established server core and the bytes of one genuine record for it.
fn established(now: Instant) -> Option<(Core, BytesMut)> {
    let (c, s) = configs();
    let mut client = Core::stream(&c, StreamSecurity::Plain, Role::Client, now, WALL, rng(1)).ok()?;
    let mut server = Core::stream(&s, StreamSecurity::Plain, Role::Server, now, WALL, rng(2)).ok()?;
    let (mut to_server, mut to_client, mut out) = (BytesMut::new(), BytesMut::new(), Vec::new());
    for _ in 0..4 {
        if client.poll_transmit(now, &mut out).ok()? {
            to_server.extend_from_slice(&out);
        }
        while server.handle_input(now, &mut to_server).ok()? {}
        if server.poll_transmit(now, &mut out).ok()? {
            to_client.extend_from_slice(&out);
        }
        while client.handle_input(now, &mut to_client).ok()? {}
    }
    client.send_data(now, 1, b"genuine").ok()?;
    client.poll_transmit(now, &mut out).ok()?;
    to_server.extend_from_slice(&out);
    Some((server, to_server))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let now = Instant::now();
    let (mut core, mut input) = match mode % 3 {
        0 => {
            let (_, s) = configs();
            let core = Core::stream(&s, StreamSecurity::Plain, Role::Server, now, WALL, rng(2));
            (core.expect("server core"), BytesMut::new())
        }
        1 => {
            let (_, s) = configs();
            let core = Core::stream(&s, StreamSecurity::Tls, Role::Server, now, WALL, rng(2));
            (core.expect("server core"), BytesMut::new())
        }
        _ => established(now).expect("a handshake between two genuine cores"),
    };
    input.extend_from_slice(data);
    let mut out = Vec::new();
    let mut first_error = None;
    // Bounded: every turn consumes a record or ends.
    for turn in 0..10_000u32 {
        let t = now + Duration::from_millis(u64::from(turn));
        let step = (|| -> Result<bool, netproto_transport::TransportError> {
            while let Some(ev) = core.poll_event(t)? {
                if let Event::Frame(f) = ev {
                    assert!(f.payload.len() <= 16 * 1024 * 1024);
                }
            }
            let progressed = core.handle_input(t, &mut input)?;
            core.handle_timeout(t)?;
            let _ = core.poll_transmit(t, &mut out)?;
            Ok(progressed)
        })();
        match step {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    if let Some(e) = first_error {
        // Final: the same error again, and nothing more is accepted.
        assert_eq!(core.handle_input(now, &mut input).unwrap_err(), e);
        assert!(core.send_data(now, 2, b"after").is_err());
    }
});
