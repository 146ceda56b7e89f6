//! The core on a fixed clock: two cores connected by in-memory buffers, no
//! sockets, no sleeps. Time moves only when a test moves it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod extensions;
mod handshake;
mod liveness;
mod priorities;
mod records;
mod violations;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned, RekeyPolicy};
use netproto_wire::{
    Compression, CompressionPolicy, Frame, FrameKind, FrameRef, Header, PacketFlags,
};
use rand::SeedableRng;

use super::{Core, Event, Role, StreamSecurity};
use crate::config::ConnectionConfig;
use crate::error::{InvalidFrame, ProtocolViolation, TimeoutKind, TransportError};

const WALL: Duration = Duration::from_hours(500_000);

fn rng(seed: u64) -> Box<rand::rngs::StdRng> {
    Box::new(rand::rngs::StdRng::seed_from_u64(seed))
}

struct Pair {
    client: Core,
    server: Core,
    to_server: BytesMut,
    to_client: BytesMut,
    now: Instant,
    out: Vec<u8>,
}

fn configs(tweak: impl Fn(&mut ConnectionConfig)) -> (ConnectionConfig, ConnectionConfig) {
    let mut r = rand::rngs::StdRng::seed_from_u64(7);
    let server_key = Keypair::generate(&mut r);
    let server_pub = *server_key.public();
    let mut s = ConnectionConfig::new(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)));
    let mut c = ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut r)),
        Arc::new(Pinned(server_pub)),
    ));
    tweak(&mut s);
    tweak(&mut c);
    (c, s)
}

impl Pair {
    fn unestablished(security: StreamSecurity, tweak: impl Fn(&mut ConnectionConfig)) -> Self {
        let (c, s) = configs(tweak);
        Self::from_configs(&c, &s, security)
    }

    /// Two cores (not yet connected) with these configs.
    fn from_configs(c: &ConnectionConfig, s: &ConnectionConfig, security: StreamSecurity) -> Self {
        let now = Instant::now();
        Self {
            client: Core::stream(c, security, Role::Client, now, WALL, rng(1)).unwrap(),
            server: Core::stream(s, security, Role::Server, now, WALL, rng(2)).unwrap(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            now,
            out: Vec::new(),
        }
    }

    fn new(tweak: impl Fn(&mut ConnectionConfig)) -> Self {
        let mut p = Self::unestablished(StreamSecurity::Plain, tweak);
        p.establish();
        p
    }

    fn establish(&mut self) {
        for _ in 0..10 {
            self.pump();
            if self.client.is_established() && self.server.is_established() {
                assert!(matches!(
                    self.client.poll_event(self.now),
                    Ok(Some(Event::Established))
                ));
                assert!(matches!(
                    self.server.poll_event(self.now),
                    Ok(Some(Event::Established))
                ));
                // Both applications start reading (a core starts paused).
                self.client.resume(self.now);
                self.server.resume(self.now);
                return;
            }
        }
        panic!("no handshake");
    }

    /// Moves every queued byte across, both ways, and lets each side take
    /// handshake messages (records stay buffered until frames are polled).
    fn pump(&mut self) {
        if self.client.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_server.extend_from_slice(&self.out);
        }
        if !self.server.is_established() {
            while self
                .server
                .handle_input(self.now, &mut self.to_server)
                .unwrap()
            {}
        }
        if self.server.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_client.extend_from_slice(&self.out);
        }
        if !self.client.is_established() {
            while self
                .client
                .handle_input(self.now, &mut self.to_client)
                .unwrap()
            {}
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The server's next application frame (pumping as needed).
    fn server_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        next_frame(&mut self.server, self.now, &mut self.to_server)
    }

    fn client_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        next_frame(&mut self.client, self.now, &mut self.to_client)
    }

    /// Moves everything the client has queued (a driver calls
    /// `poll_transmit` until it says there is nothing more).
    fn client_to_server(&mut self) -> usize {
        let mut moved = 0;
        while self.client.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_server.extend_from_slice(&self.out);
            moved += self.out.len();
        }
        moved
    }

    fn server_to_client(&mut self) -> usize {
        let mut moved = 0;
        while self.server.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_client.extend_from_slice(&self.out);
            moved += self.out.len();
        }
        moved
    }
}

/// Where the first `records` records of `bytes` (stream format: a 10-byte
/// header whose last four bytes are the body length) end.
fn record_boundary(bytes: &[u8], records: usize) -> usize {
    let mut at = 0;
    for _ in 0..records {
        let len = u32::from_be_bytes([bytes[at + 6], bytes[at + 7], bytes[at + 8], bytes[at + 9]]);
        at += 10 + len as usize;
    }
    at
}

fn assert_timeout(err: &TransportError, expected: TimeoutKind) {
    assert!(
        matches!(err, TransportError::Timeout { kind, .. } if *kind == expected),
        "{err:?}"
    );
}

fn next_frame(
    core: &mut Core,
    now: Instant,
    input: &mut BytesMut,
) -> Result<Option<Frame>, TransportError> {
    loop {
        match core.poll_event(now)? {
            Some(Event::Frame(f)) => return Ok(Some(f)),
            Some(_) => continue,
            None => {}
        }
        if !core.handle_input(now, input)? {
            return Ok(None);
        }
    }
}

/// A plain packet (TLS without Noise) holding `frames`.
fn plain_packet(frames: &[FrameRef<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in frames {
        f.encode(&mut body);
    }
    let mut out = Vec::new();
    Header::for_body(PacketFlags::default(), body.len())
        .unwrap()
        .write(&mut out);
    out.extend_from_slice(&body);
    out
}

/// A TLS-mode pair (plain packets) with both hellos exchanged.
fn tls_pair() -> Pair {
    let mut p = Pair::unestablished(StreamSecurity::Tls, |_| {});
    p.client_to_server();
    while !p.server.is_established() {
        assert!(p.server.handle_input(p.now, &mut p.to_server).unwrap());
    }
    p.server_to_client();
    p
}
