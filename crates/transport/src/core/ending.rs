//! How a connection that the peer ended says why: before the core stops
//! sending, an `ERR` on stream 0 with the code and the error's text
//! (WIRE.md "ERR codes"), so a peer sees more than a closed socket.

use netproto_wire::{ErrorCode, FrameKind, HeadersRef};

use super::Core;
use crate::core::record::RecordFormat;
use crate::error::{TimeoutKind, TransportError};

impl<F: RecordFormat> Core<F> {
    /// When the peer caused the end (a protocol violation, a limit, a
    /// deadline), queues `ERR` on stream 0 saying why, so a peer sees more
    /// than a closed socket. Nothing is said before the handshake
    /// finished (no session to say it in, and no oracle for a prober) or
    /// after our BYE.
    pub(super) fn say_why(&mut self, e: &TransportError) {
        let Some(code) = error_code_for(e) else {
            return;
        };
        // A TLS client still waiting for the server's hello is in the
        // handshake too.
        if !self.is_established() || self.hello_pending() || self.closing {
            return;
        }
        let reason = e.to_string();
        let reason = truncate_reason(&reason);
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.0.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        // Session time only picks the key (rekey by age); the record is
        // sealed when the driver next transmits.
        let t = self
            .live
            .last_activity()
            .saturating_duration_since(self.epoch);
        let pushed = self.tx.push(
            &self.format,
            &mut self.sender,
            t,
            FrameKind::Err,
            0,
            HeadersRef::EMPTY,
            &payload,
            false,
        );
        if pushed.is_ok() {
            self.transmit_signal = true;
        }
        self.closing = true;
    }
}

/// The ERR code that tells the peer why its connection ends, for errors
/// the peer caused (`None`: ours, or nothing to say).
fn error_code_for(e: &TransportError) -> Option<ErrorCode> {
    use netproto_wire::WireError as W;
    Some(match e {
        TransportError::PeerMessageTooLarge { .. }
        | TransportError::ReassemblyBudget { .. }
        | TransportError::Wire(
            W::Oversize { .. }
            | W::PayloadTooLarge { .. }
            | W::HeaderBlockTooLarge { .. }
            | W::TooManyHeaders { .. }
            | W::HeaderTooLong { .. }
            | W::DecompressedTooLarge { .. },
        ) => ErrorCode::TOO_LARGE,
        // Ours, not the peer's.
        TransportError::Protocol(crate::error::ProtocolViolation::ImpossibleStreamState) => {
            return None
        }
        TransportError::Protocol(_)
        | TransportError::Wire(_)
        | TransportError::Crypto(netproto_crypto::CryptoError::Decrypt) => ErrorCode::PROTOCOL,
        TransportError::Timeout {
            kind: TimeoutKind::Packet | TimeoutKind::Message | TimeoutKind::ReadIdle,
            ..
        } => ErrorCode::TIMEOUT,
        _ => return None,
    })
}

/// ERR reasons stay short (WIRE.md: at most 256 bytes of UTF-8, as the
/// service cuts its own).
fn truncate_reason(reason: &str) -> &str {
    const MAX: usize = 256;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
