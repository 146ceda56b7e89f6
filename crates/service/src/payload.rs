//! The service's messages as transport payloads: the transport moves bytes
//! and knows no application types; a [`Message`] is encoded here, once,
//! straight into the connection's record buffer.

use netproto_transport::Payload;
use netproto_wire::{Message, WireError};

/// A [`Message`] borrowed as a DATA payload.
pub(crate) struct Encoded<'a>(pub(crate) &'a Message);

impl Payload for Encoded<'_> {
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.0.encode(out)
    }

    fn len_hint(&self) -> usize {
        self.0.encoded_len().unwrap_or(0)
    }
}
