//! foca's postcard codec with admission applied while decoding: a packet
//! that names a key outside the allow-list fails to decode as a whole, so
//! no part of it reaches the membership table.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Member, PostcardCodec};

use crate::MemberId;

/// Why a packet did not decode.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
    #[error("names a key outside the allow-list")]
    NotAllowed,
}

/// The codec every node uses (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct ClusterCodec {
    /// `None`: open admission.
    allowed: Option<Arc<HashSet<[u8; 32]>>>,
}

impl ClusterCodec {
    pub(crate) fn new(allowed: Option<Arc<HashSet<[u8; 32]>>>) -> Self {
        Self { allowed }
    }

    fn check(&self, id: &MemberId) -> Result<(), CodecError> {
        match &self.allowed {
            Some(keys) if !keys.contains(id.key_bytes()) => Err(CodecError::NotAllowed),
            _ => Ok(()),
        }
    }
}

impl Codec<MemberId> for ClusterCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        Ok(PostcardCodec.encode_header(header, buf)?)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<MemberId>, CodecError> {
        let header = PostcardCodec.decode_header(buf)?;
        self.check(&header.src)?;
        self.check(&header.dst)?;
        Ok(header)
    }

    fn encode_member(
        &mut self,
        member: &Member<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        Ok(PostcardCodec.encode_member(member, buf)?)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<MemberId>, CodecError> {
        let member = PostcardCodec.decode_member(buf)?;
        self.check(member.id())?;
        Ok(member)
    }
}

/// Whether a foca error came from a packet naming a refused key.
pub(crate) fn is_not_allowed(e: &foca::Error) -> bool {
    matches!(e, foca::Error::Decode(inner) if matches!(inner.downcast_ref::<CodecError>(), Some(CodecError::NotAllowed)))
}
