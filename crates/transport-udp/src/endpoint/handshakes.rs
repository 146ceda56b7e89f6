//! The endpoint's handshake handlers: initiations (mac1, cookies under
//! load, rate limits, duplicates), responses, confirmations and cookie
//! replies. Split from `mod.rs` by what they hold; same `impl Endpoint`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::cookie::{
    open_cookie, seal_cookie, COOKIE_NONCE_LEN, MAC_LEN, SEALED_COOKIE_LEN,
};
use netproto_crypto::{Handshake, Pattern};

use netproto_wire::DatagramRef;

use super::{Endpoint, Ends, Initiating, Responding, RngRef, SessionId, Transmit};
use crate::error::{DropReason, Result, UdpError};
use crate::handshake::{
    append_macs, cookie_datagram, handshake_datagram, mac1_valid, split_macs,
    COOKIE_SECRET_LIFETIME, MACS_LEN,
};
use crate::session::{Event, Resend, UdpSession};
use crate::SessionInfo;

impl Endpoint {
    pub(super) fn on_initiation(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(r) = self.responder.as_mut() else {
            return self.drop(DropReason::NotAccepting);
        };
        let Some((covered, mac1, mac2)) = split_macs(datagram) else {
            return self.drop(DropReason::Malformed);
        };
        let keys = if mac1_valid(&r.keys, covered, &mac1) {
            r.keys.clone()
        } else if let Some(k) = r.unkeyed.as_ref().filter(|k| mac1_valid(k, covered, &mac1)) {
            k.clone()
        } else {
            return self.drop(DropReason::BadMac1);
        };
        let Some((index, noise)) = covered
            .get(netproto_wire::ENVELOPE_LEN..)
            .and_then(<[u8]>::split_first_chunk::<4>)
        else {
            return self.drop(DropReason::Malformed);
        };
        let peer_index = u32::from_be_bytes(*index);
        // A retransmitted initiation gets the same answer, without new work.
        if let Some(&local) = self.by_init.get(&(from, peer_index)) {
            let cached = self
                .responding
                .get(&local)
                .map(|p| p.response.clone())
                .or_else(|| self.sessions.get(&local).and_then(|s| s.response.clone()));
            if let Some(response) = cached {
                if let Some(p) = self.responding.get_mut(&local) {
                    p.resent = true;
                }
                self.transmits.push_back(Transmit {
                    destination: from,
                    contents: response,
                });
            } else {
                self.drop(DropReason::Duplicate);
            }
            return;
        }
        r.jar.rotate_if_due(now, || {
            let mut s = [0u8; 32];
            self.rng.fill_bytes(&mut s);
            s
        });
        let pending = self.responding.len() + self.half_open.len();
        if pending >= self.cfg.handshake.cookie_threshold {
            if !r
                .jar
                .mac2_valid(from, &datagram[..datagram.len() - MAC_LEN], &mac2)
            {
                let mut nonce = [0u8; COOKIE_NONCE_LEN];
                self.rng.fill_bytes(&mut nonce);
                let cookie = r.jar.cookie(from);
                if let Ok(sealed) = seal_cookie(&keys, &nonce, &cookie, &mac1) {
                    self.stats.cookies_sent += 1;
                    metrics::counter!("netproto_udp_cookies_sent_total").increment(1);
                    self.transmits.push_back(Transmit {
                        destination: from,
                        contents: cookie_datagram(peer_index, &nonce, &sealed),
                    });
                }
                return;
            }
            if !r.limiter.allow(from.ip(), now) {
                return self.drop(DropReason::RateLimited);
            }
        }
        if pending >= self.cfg.handshake.max_pending || self.table_full() {
            return self.drop(DropReason::HandshakesFull);
        }
        let noise = noise.to_vec();
        let answer = self.respond(now, from, peer_index, &noise, datagram.len());
        if let Err(e) = answer {
            tracing::debug!(%from, error = %e, "handshake initiation refused");
            self.drop(DropReason::HandshakeFailed);
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer_index: u32,
        noise: &[u8],
        init_len: usize,
    ) -> Result<()> {
        let Some(r) = self.responder.as_mut() else {
            return Ok(());
        };
        let mut hs = Handshake::responder(r.hs.clone())?;
        r.guard
            .set_now(self.wall_at_epoch + now.saturating_duration_since(self.epoch));
        let guard = (r.hs.pattern == Pattern::IK).then_some(&mut r.guard);
        hs.read_message(noise, guard)?;
        let wall = self.wall(now);
        let mut out = Vec::new();
        hs.write_message(&mut RngRef(&mut *self.rng), wall, &mut out)?;
        let local = self.new_index();
        let mut response = Vec::with_capacity(out.len() + 18);
        handshake_datagram(peer_index, 1, local, &out, &mut response);
        if response.len() > init_len {
            // Never answer with more bytes than arrived (anti-amplification);
            // the initiation padding makes this unreachable for our peers.
            return Err(UdpError::Crypto(
                netproto_crypto::CryptoError::InitiationTooShort {
                    len: init_len,
                    response: response.len(),
                },
            ));
        }
        self.transmits.push_back(Transmit {
            destination: from,
            contents: response.clone(),
        });
        if hs.is_finished() {
            // Two messages: the session exists now, but it is announced
            // (and leaves the pending count) only when the initiator's
            // first record proves it holds the keys: a spoofed initiation
            // never reaches the application.
            let established = hs.finish()?;
            let mut session = self.open_session(
                &established,
                Ends {
                    local,
                    remote: peer_index,
                    peer: from,
                    initiator: false,
                },
                now,
                false,
            );
            session.response = Some(response);
            session.init_key = Some((from, peer_index));
            session.unconfirmed_until = Some(now + self.cfg.handshake.timeout);
            self.by_init.insert((from, peer_index), local);
            self.half_open.insert(local);
            self.sessions.insert(local, session);
            self.after(local);
        } else {
            self.by_init.insert((from, peer_index), local);
            self.responding.insert(
                local,
                Responding {
                    hs,
                    peer: from,
                    peer_index,
                    response,
                    sent_at: now,
                    resent: false,
                    deadline: now + self.cfg.handshake.timeout,
                    early: Vec::new(),
                },
            );
        }
        Ok(())
    }

    fn open_session(
        &mut self,
        established: &netproto_crypto::Established,
        ends: Ends,
        now: Instant,
        announce: bool,
    ) -> UdpSession {
        let Ends {
            local,
            remote,
            peer,
            initiator,
        } = ends;
        let info = Arc::new(SessionInfo {
            id: SessionId(local),
            peer_addr: peer,
            peer_key: established.peer,
            handshake_hash: established.handshake_hash,
            pattern: established.pattern,
            initiator,
            negotiated: established.negotiated,
        });
        self.stats.handshakes += 1;
        metrics::counter!("netproto_udp_handshakes_total").increment(1);
        let mut session = UdpSession::new(&self.cfg, established, info.clone(), remote, now);
        if announce {
            self.events
                .push_back((SessionId(local), Event::Connected(info), 0));
        } else {
            session.announced = false;
        }
        session
    }

    pub(super) fn on_response(&mut self, now: Instant, from: SocketAddr, local: u32, body: &[u8]) {
        if let Some(s) = self.sessions.get_mut(&local) {
            // Our confirmation was lost and the responder answered a
            // retransmitted initiation: resend the confirmation now.
            let resend = s.peer == from && s.confirm.is_some();
            if let (true, Some(c)) = (resend, &mut s.confirm) {
                c.next = now;
            }
            if resend {
                self.mark_ready(local);
            } else {
                self.drop(DropReason::Duplicate);
            }
            return;
        }
        if self.initiating.get(&local).is_none_or(|i| i.peer != from) {
            return self.drop(DropReason::UnknownSession);
        }
        let Some((index, noise)) = body.split_first_chunk::<4>() else {
            return self.drop(DropReason::Malformed);
        };
        let Some(mut init) = self.initiating.remove(&local) else {
            return;
        };
        let remote = u32::from_be_bytes(*index);
        let result = (|| -> Result<_> {
            init.hs.read_message(noise, None)?;
            let mut confirm = None;
            if !init.hs.is_finished() {
                let mut out = Vec::new();
                let wall = self.wall(now);
                init.hs
                    .write_message(&mut RngRef(&mut *self.rng), wall, &mut out)?;
                let mut datagram = Vec::with_capacity(out.len() + 18);
                handshake_datagram(remote, 2, local, &out, &mut datagram);
                confirm = Some(datagram);
            }
            Ok((init.hs.finish()?, confirm))
        })();
        match result {
            Ok((established, confirm)) => {
                let mut session = self.open_session(
                    &established,
                    Ends {
                        local,
                        remote,
                        peer: from,
                        initiator: true,
                    },
                    now,
                    true,
                );
                if !init.retransmitted {
                    session.rtt_sample(now.saturating_duration_since(init.first_sent));
                }
                if confirm.is_none() {
                    // Two messages: the responder waits for our first record.
                    let interval = session
                        .stats()
                        .srtt
                        .map_or(self.cfg.handshake.initial_rto, |s| {
                            (s * 2).max(Duration::from_millis(10))
                        });
                    session.probe = Some((now, interval));
                }
                if let Some(datagram) = confirm {
                    let limits = self.cfg.handshake;
                    let rto = session.stats().srtt.map_or(limits.initial_rto, |s| {
                        (s * 2).max(Duration::from_millis(10))
                    });
                    session.confirm = Some(Resend {
                        datagram,
                        next: now,
                        rto: rto / 2,
                        max_rto: limits.max_rto,
                        deadline: init.resend.deadline.max(now + rto),
                    });
                }
                self.sessions.insert(local, session);
                self.mark_ready(local);
                self.after(local);
            }
            Err(e) => {
                self.drop(DropReason::HandshakeFailed);
                self.events
                    .push_back((SessionId(local), Event::Closed(e), 0));
            }
        }
    }

    pub(super) fn on_confirm(&mut self, now: Instant, from: SocketAddr, local: u32, body: &[u8]) {
        if let Some(s) = self.sessions.get_mut(&local) {
            if !s.info.initiator && s.peer == from && s.info.pattern.message_count() == 3 {
                // Our record was lost: send another.
                s.owe_record = true;
                self.mark_ready(local);
            } else {
                self.drop(DropReason::Duplicate);
            }
            return;
        }
        if self.responding.get(&local).is_none_or(|p| p.peer != from) {
            return self.drop(DropReason::UnknownSession);
        }
        let Some(mut p) = self.responding.remove(&local) else {
            return;
        };
        let noise = body.get(4..).unwrap_or_default();
        let established = match p.hs.read_message(noise, None).and_then(|()| p.hs.finish()) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(%from, error = %e, "handshake confirmation refused");
                self.by_init.remove(&(p.peer, p.peer_index));
                return self.drop(DropReason::HandshakeFailed);
            }
        };
        let mut session = self.open_session(
            &established,
            Ends {
                local,
                remote: p.peer_index,
                peer: from,
                initiator: false,
            },
            now,
            true,
        );
        // A late copy of message 0 still gets message 1, without new work.
        session.init_key = Some((p.peer, p.peer_index));
        session.response = Some(p.response);
        if !p.resent {
            session.rtt_sample(now.saturating_duration_since(p.sent_at));
        }
        session.owe_record = true;
        self.sessions.insert(local, session);
        self.mark_ready(local);
        self.after(local);
        // Records that overtook this message: their turn now.
        for mut record in p.early {
            if let Ok((header, envelope_len)) =
                DatagramRef::parse(&record).map(|d| (d.header, d.envelope.len()))
            {
                self.on_record(now, from, &header, envelope_len, &mut record);
            }
        }
    }

    pub(super) fn on_cookie(&mut self, now: Instant, from: SocketAddr, local: u32, body: &[u8]) {
        let Some(init) = self.initiating.get_mut(&local).filter(|i| i.peer == from) else {
            return self.drop(DropReason::UnknownSession);
        };
        let (Some(nonce), Some(sealed)) = (
            body.first_chunk::<COOKIE_NONCE_LEN>(),
            body.get(COOKIE_NONCE_LEN..)
                .and_then(|s| <&[u8; SEALED_COOKIE_LEN]>::try_from(s).ok()),
        ) else {
            return self.drop(DropReason::Malformed);
        };
        let Ok(cookie) = open_cookie(&init.keys, nonce, sealed, &init.mac1) else {
            return self.drop(DropReason::BadCookie);
        };
        init.cookie = Some((cookie, now));
        // The cookie proves the responder is there and loaded: answer at
        // once instead of waiting a retransmission interval.
        let datagram = Self::initiation(init, now);
        init.retransmitted = true;
        self.transmits.push_back(Transmit {
            destination: from,
            contents: datagram,
        });
    }

    /// Message 0 with current MACs.
    pub(super) fn initiation(init: &mut Initiating, now: Instant) -> Vec<u8> {
        let mut datagram = init.bare.clone();
        let cookie = init
            .cookie
            .filter(|(_, at)| now.saturating_duration_since(*at) < COOKIE_SECRET_LIFETIME)
            .map(|(c, _)| c);
        init.mac1 = append_macs(&mut datagram, &init.keys, cookie.as_ref());
        debug_assert_eq!(datagram.len(), init.bare.len() + MACS_LEN);
        datagram
    }
}
