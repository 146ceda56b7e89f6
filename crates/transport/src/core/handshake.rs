//! The handshake phase of the core: the Noise messages (or the capability
//! hello inside TLS) until both sides are open.

use std::sync::Arc;
use std::time::Instant;

use netproto_crypto::{
    codecs, Capabilities, CipherSuite, Mode, Pattern, PublicKey, Receiver, Sender, Session,
};
use netproto_wire::Compression;

use super::{
    noise_stream, stream_suite, ConnectionInfo, Core, Event, Phase, Role, HELLO_STREAM,
    NOISE_STREAM,
};
use crate::core::record::RecordFormat;
use crate::error::{ProtocolViolation, Result, TransportError};
use bytes::BytesMut;

impl<F: RecordFormat> Core<F> {
    /// Writes our handshake messages while it is our turn.
    pub(super) fn write_handshake(&mut self, now: Instant) -> Result<()> {
        let wall = self.wall(now);
        let Phase::Noise(hs) = &mut self.phase else {
            return Ok(());
        };
        let mut msg = Vec::new();
        let stream_id = noise_stream(hs.cipher());
        while hs.is_my_turn() && !hs.is_finished() {
            msg.clear();
            hs.write_message(&mut &mut *self.rng, wall, &mut msg)?;
            self.format
                .handshake_packet(stream_id, &msg, self.tx.raw())?;
            self.transmit_signal = true;
        }
        if hs.is_finished() {
            self.finish_noise(now)?;
        }
        Ok(())
    }

    pub(super) fn finish_noise(&mut self, now: Instant) -> Result<()> {
        let Phase::Noise(hs) = std::mem::replace(&mut self.phase, Phase::Open) else {
            return Ok(());
        };
        let est = hs.finish()?;
        let (sender, receiver) =
            Session::new(&est, Mode::Stream, self.rekey, self.session_time(now)).split();
        let noise = NoiseFacts {
            peer: est.peer,
            hash: est.handshake_hash,
            pattern: est.pattern,
            cipher: est.suite,
        };
        self.peer_caps = Some(est.peer_capabilities);
        self.open(now, Some((sender, receiver)), Some(noise), est.negotiated);
        Ok(())
    }

    pub(super) fn queue_hello(&mut self) -> Result<()> {
        let mut payload = Vec::with_capacity(16);
        self.cfg_caps.encode(&mut payload);
        self.format
            .handshake_packet(HELLO_STREAM, &payload, self.tx.raw())?;
        self.transmit_signal = true;
        Ok(())
    }

    /// Enters the open phase.
    pub(super) fn open(
        &mut self,
        now: Instant,
        keys: Option<(Sender, Receiver)>,
        noise: Option<NoiseFacts>,
        negotiated: Capabilities,
    ) {
        self.phase = Phase::Open;
        if let Some((s, r)) = keys {
            self.sender = Some(s);
            self.receiver = Some(r);
        }
        let mut compression = self.compression;
        if self.hello_pending() {
            // Until the server's hello shows which codecs it reads.
            self.tx.pending_codec = Some(compression.codec).filter(|c| *c != Compression::None);
            compression.codec = Compression::None;
        } else if negotiated.compression & codec_bit(compression.codec) == 0 {
            compression.codec = Compression::None;
        }
        self.tx.compression = compression;
        let info = ConnectionInfo {
            peer_key: noise.and_then(|n| n.peer),
            handshake_hash: noise.map(|n| n.hash),
            negotiated,
            pattern: noise.map(|n| n.pattern),
            cipher: noise.map(|n| n.cipher),
            transport: self.transport.clone(),
            initiator: self.role == Role::Client,
            compression: compression.codec,
        };
        tracing::debug!(
            peer = info
                .peer_key
                .map(|k| k.fingerprint())
                .as_deref()
                .unwrap_or("anonymous"),
            pattern = info.pattern.map_or("none (TLS)", Pattern::name),
            cipher = info.cipher.map_or("TLS", CipherSuite::noise_name),
            transport = %info.transport,
            "secure connection established"
        );
        self.info = Some(Arc::new(info));
        self.live.established(now);
        self.events.push_back(Event::Established);
    }

    /// One handshake packet in.
    pub(super) fn handshake_input(&mut self, now: Instant, input: &mut BytesMut) -> Result<bool> {
        let Some((stream_id, body, range)) = self.format.next_handshake(input)? else {
            return Ok(false);
        };
        self.live.received(now);
        let payload = &body[range];
        match &mut self.phase {
            Phase::Noise(hs) => {
                if stream_id == HELLO_STREAM {
                    // The peer would otherwise see only an EOF: tell it we
                    // expect Noise.
                    self.format
                        .handshake_packet(NOISE_STREAM, &[], self.tx.raw())?;
                    self.transmit_signal = true;
                    return Err(TransportError::Protocol(
                        ProtocolViolation::NoiseInsideTlsMismatch {
                            peer_runs_noise: false,
                        },
                    ));
                }
                // The initiator's first message names the cipher; a
                // responder follows it (if accepted) and every later
                // message must name the same one.
                let suite = stream_suite(stream_id).ok_or(TransportError::Protocol(
                    ProtocolViolation::NotOneHandshakeFrame,
                ))?;
                if suite != hs.cipher() {
                    hs.select_cipher(suite)?;
                }
                match &self.timestamp_guard {
                    Some(guard) => {
                        let mut locked = LockedGuard {
                            guard,
                            now: self.wall_at_epoch + now.saturating_duration_since(self.epoch),
                        };
                        hs.read_message_with(payload, Some(&mut locked))?;
                    }
                    None => hs.read_message(payload, None)?,
                }
                self.write_handshake(now)?;
            }
            Phase::AwaitHello | Phase::Open => {
                if stream_id != HELLO_STREAM {
                    if self.role == Role::Server {
                        // Let a client that started Noise report the
                        // mismatch rather than an EOF.
                        self.queue_hello()?;
                    }
                    return Err(TransportError::Protocol(
                        ProtocolViolation::NoiseInsideTlsMismatch {
                            peer_runs_noise: true,
                        },
                    ));
                }
                let peer = Capabilities::decode(payload)?;
                if self.hello_pending() {
                    self.peer_caps = Some(peer);
                    if let Some(wanted) = self.tx.pending_codec.take() {
                        if peer.compression & codec_bit(wanted) != 0 {
                            self.tx.compression.codec = wanted;
                        }
                    }
                } else {
                    self.queue_hello()?;
                    self.peer_caps = Some(peer);
                    let negotiated = self.cfg_caps.intersect(&peer);
                    self.open(now, None, None, negotiated);
                }
            }
        }
        Ok(true)
    }
}

/// What a finished Noise handshake established, for [`ConnectionInfo`].
#[derive(Clone, Copy)]
pub(super) struct NoiseFacts {
    peer: Option<PublicKey>,
    hash: [u8; 32],
    pattern: Pattern,
    cipher: CipherSuite,
}

/// The capability bit of a codec.
pub(super) fn codec_bit(c: Compression) -> u8 {
    match c {
        Compression::Lz4 => codecs::LZ4,
        Compression::Zstd => codecs::ZSTD,
        Compression::None => 0,
    }
}

/// A listener's replay guard, locked only while an initiation's timestamp
/// is checked (not during the key agreement before it: every handshake of
/// the listener shares the lock).
struct LockedGuard<'a> {
    guard: &'a std::sync::Mutex<netproto_crypto::TimestampGuard>,
    now: std::time::Duration,
}

impl netproto_crypto::ReplayCheck for LockedGuard<'_> {
    fn check_and_update(
        &mut self,
        peer: &netproto_crypto::PublicKey,
        stamp: [u8; netproto_crypto::TAI64N_LEN],
    ) -> netproto_crypto::Result<()> {
        // Every update of the guard completes or changes nothing, so a
        // poisoned lock still holds a consistent guard.
        let mut g = self
            .guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.set_now(self.now);
        g.check_and_update(peer, stamp)
    }
}
