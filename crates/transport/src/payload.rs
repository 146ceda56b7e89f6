//! [`Payload`]: what the connection needs of an application message. The
//! transport moves encoded bytes and knows no application types; a payload
//! encodes itself once, straight into the connection's send buffer.

use bytes::Bytes;
use netproto_wire::WireError;

/// Something that can be sent as a DATA frame's payload.
///
/// The service layer implements it for its message types; byte slices,
/// vectors and `Bytes` implement it here.
pub trait Payload {
    /// Appends the encoded payload to `out`.
    ///
    /// # Errors
    /// A [`WireError`] if the value cannot be encoded.
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError>;

    /// The encoded length, if known without encoding (0: unknown). A
    /// connection with a send budget checks it before queueing; a payload
    /// that does not say is charged once it is encoded, so it may take the
    /// budget past its limit by one message.
    fn len_hint(&self) -> usize {
        0
    }
}

impl Payload for [u8] {
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        out.extend_from_slice(self);
        Ok(())
    }

    fn len_hint(&self) -> usize {
        self.len()
    }
}

impl Payload for Vec<u8> {
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        out.extend_from_slice(self);
        Ok(())
    }

    fn len_hint(&self) -> usize {
        self.len()
    }
}

impl Payload for Bytes {
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        out.extend_from_slice(self);
        Ok(())
    }

    fn len_hint(&self) -> usize {
        self.len()
    }
}

impl<P: Payload + ?Sized> Payload for &P {
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        (**self).encode_payload(out)
    }

    fn len_hint(&self) -> usize {
        (**self).len_hint()
    }
}
