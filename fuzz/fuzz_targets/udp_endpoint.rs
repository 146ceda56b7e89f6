//! Feeds arbitrary datagrams to a UDP endpoint that has one established
//! session, from the session's peer address and from a stranger, at
//! advancing times. Nothing may panic, the endpoint must keep its budget,
//! and the genuine session must survive anything a stranger sends.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
use netproto_transport_udp::{Endpoint, Event, UdpConfig};
use rand::SeedableRng;

const WALL: Duration = Duration::from_secs(1_800_000_000);

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut r = rand::rngs::StdRng::seed_from_u64(7);
    let server_key = Keypair::generate(&mut r);
    let pin = Arc::new(Pinned(*server_key.public()));
    let accept = HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer));
    let Ok(mut server) = Endpoint::new(UdpConfig::default(), Some(accept), Box::new(r.clone()), now, WALL) else {
        return;
    };
    let Ok(mut client) = Endpoint::new(UdpConfig::default(), None, Box::new(rand::rngs::StdRng::seed_from_u64(8)), now, WALL) else {
        return;
    };
    let (s_addr, c_addr): (SocketAddr, SocketAddr) = (([10, 0, 0, 1], 1).into(), ([10, 0, 0, 2], 2).into());
    let cfg = HandshakeConfig::new(Some(Keypair::generate(&mut r)), pin);
    if client.connect(now, s_addr, cfg).is_err() {
        return;
    }
    for _ in 0..4 {
        while let Some(mut t) = client.poll_transmit(now) {
            server.handle_datagram(now, c_addr, &mut t.contents);
        }
        while let Some(mut t) = server.poll_transmit(now) {
            client.handle_datagram(now, s_addr, &mut t.contents);
        }
    }
    // Input: [selector, len, bytes...]*; selector bit 0 picks the source,
    // bits 1-3 advance time.
    let mut rest = data;
    let mut t = now;
    while let [sel, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let mut datagram = tail[..n].to_vec();
        rest = &tail[n..];
        t += Duration::from_millis(u64::from(sel >> 1 & 7) * 100);
        let from: SocketAddr = if sel & 1 == 0 { c_addr } else { ([10, 0, 0, 3], 3).into() };
        server.handle_datagram(t, from, &mut datagram);
        server.handle_timeout(t);
        while server.poll_transmit(t).is_some() {}
        while let Some((_, e)) = server.poll_event() {
            let _ = e;
        }
        assert!(server.stats().buffered <= netproto_transport_udp::DEFAULT_ENDPOINT_BUDGET);
    }
    let _ = Event::Delivered(0);
});
