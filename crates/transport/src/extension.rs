//! Extension frames and the feature bits that negotiate them.
//!
//! Frame kinds `0x80`–`0xff` belong to extensions. An extension is named by
//! an [`ExtensionId`] (0–23), which is feature bit `8 + id` of the handshake
//! capabilities, and owns the frame kinds it declares. Both sides must set
//! the bit for the extension to be on; then its frames are delivered to the
//! application, otherwise a receiver skips them (WIRE.md: "Extension
//! frames") and a sender refuses to send them
//! ([`crate::InvalidFrame::ExtensionNotNegotiated`]). The mapping of an id
//! to its kinds is the extension's own contract: both sides declare the
//! same one.
//!
//! Bits 0–7 are netproto's own protocol features ([`features`]).
//!
//! (Why ids instead of one bit per kind: 128 kinds do not fit the 32 feature
//! bits of the 10-byte capabilities, and growing the capabilities would
//! change every handshake message's length. An extension with a few kinds
//! needs one bit, as in HTTP/2 and QUIC, where a setting or transport
//! parameter turns on an extension and the extension defines its frames.)

use crate::error::ExtensionError;

/// Feature bits of the handshake capabilities that netproto defines.
pub mod features {
    /// The sender may interleave pieces of continued messages on different
    /// stream ids (priorities: an urgent message overtakes a large one
    /// mid-flight). WIRE.md, "Interleaved continuation".
    pub const INTERLEAVE: u32 = 1 << 0;
    /// Bits netproto reserves for protocol features (0–7); bits 8–31 are
    /// extension ids 0–23.
    pub const PROTOCOL_MASK: u32 = 0xff;
}

/// The first frame kind of the extension range.
pub const FIRST_EXTENSION_KIND: u8 = 0x80;
/// How many extension ids fit the feature bits (8–31).
pub const MAX_EXTENSIONS: u8 = 24;

/// An extension's number: feature bit `8 + id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtensionId(u8);

impl ExtensionId {
    /// Extension `id` (0–23).
    ///
    /// # Errors
    /// [`ExtensionError::IdOutOfRange`] from 24 up.
    pub const fn new(id: u8) -> Result<Self, ExtensionError> {
        if id < MAX_EXTENSIONS {
            Ok(Self(id))
        } else {
            Err(ExtensionError::IdOutOfRange { id })
        }
    }

    /// The number (0–23).
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Its feature bit in the handshake capabilities.
    pub const fn feature_bit(self) -> u32 {
        1 << (8 + self.0 as u32)
    }
}

/// The extensions this side speaks: which id owns which frame kind.
///
/// ```
/// use netproto_transport::{ExtensionId, Extensions};
///
/// let mut ext = Extensions::new();
/// let telemetry = ExtensionId::new(3)?;
/// ext.register(telemetry, [0x90, 0x91])?;
/// assert_eq!(ext.owner(0x90), Some(telemetry));
/// assert_eq!(ext.features(), 1 << 11);
/// // On only if the peer also set bit 11.
/// assert!(ext.accepts(0x91, 1 << 11));
/// assert!(!ext.accepts(0x91, 0));
/// # Ok::<(), netproto_transport::ExtensionError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Extensions {
    /// For kind `0x80 + i`: the owning id plus one (0: none).
    owner: [u8; 128],
    features: u32,
}

impl Default for Extensions {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<(u8, u8)> = (0..128u8)
            .filter_map(|i| {
                let owner = self.owner[usize::from(i)];
                (owner != 0).then(|| (FIRST_EXTENSION_KIND + i, owner - 1))
            })
            .collect();
        f.debug_struct("Extensions")
            .field("features", &format_args!("{:#010x}", self.features))
            .field("kind_to_id", &kinds)
            .finish()
    }
}

impl Extensions {
    /// None.
    pub const fn new() -> Self {
        Self {
            owner: [0; 128],
            features: 0,
        }
    }

    /// Declares that extension `id` uses frame `kinds` (each `0x80`–`0xff`).
    /// Registering the same id again adds kinds; nothing changes on error.
    ///
    /// # Errors
    /// [`ExtensionError::NotAnExtensionKind`] below `0x80`,
    /// [`ExtensionError::KindTaken`] if another id owns a kind.
    pub fn register(
        &mut self,
        id: ExtensionId,
        kinds: impl IntoIterator<Item = u8>,
    ) -> Result<(), ExtensionError> {
        let mut owner = self.owner;
        for kind in kinds {
            let slot = kind
                .checked_sub(FIRST_EXTENSION_KIND)
                .ok_or(ExtensionError::NotAnExtensionKind { kind })?;
            let cell = &mut owner[usize::from(slot)];
            match *cell {
                0 => *cell = id.0 + 1,
                o if o == id.0 + 1 => {}
                o => return Err(ExtensionError::KindTaken { kind, owner: o - 1 }),
            }
        }
        self.owner = owner;
        self.features |= id.feature_bit();
        Ok(())
    }

    /// The feature bits to advertise (one per registered id).
    pub const fn features(&self) -> u32 {
        self.features
    }

    /// The id that owns frame `kind`, if any.
    pub fn owner(&self, kind: u8) -> Option<ExtensionId> {
        let slot = kind.checked_sub(FIRST_EXTENSION_KIND)?;
        match self.owner[usize::from(slot)] {
            0 => None,
            o => Some(ExtensionId(o - 1)),
        }
    }

    /// Whether frames of `kind` may be sent, and are delivered when
    /// received, given the `negotiated` feature bits (ours AND the peer's).
    pub fn accepts(&self, kind: u8, negotiated: u32) -> bool {
        self.owner(kind)
            .is_some_and(|id| negotiated & id.feature_bit() != 0)
    }
}
