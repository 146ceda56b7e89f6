//! Handlers for extension frames (kinds `0x80`–`0xff`), on the server
//! ([`crate::Dispatcher::extension`]) and the client
//! ([`crate::ClientConfig::extension`]).
//!
//! Registering a handler registers its extension with the connection
//! ([`netproto_transport::Extensions`]): its feature bit is advertised in
//! the handshake, and its frames reach the handler only on connections
//! whose peer advertised the same bit. A peer that did not skips them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use netproto_transport::{ExtensionId, Extensions, TransportError};
use netproto_wire::{Frame, FrameKind};

/// What handles one extension frame: called on the connection's task with
/// the frame; a frame it returns is sent back on the same connection (an
/// extension frame of a negotiated extension, or any frame a peer expects).
/// It must not block.
pub type ExtensionHandler = Arc<dyn Fn(Frame) -> Option<Frame> + Send + Sync>;

/// Extension frame kinds and their handlers.
#[derive(Clone, Default)]
pub(crate) struct ExtensionHandlers {
    extensions: Extensions,
    handlers: HashMap<u8, ExtensionHandler>,
}

impl std::fmt::Debug for ExtensionHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("ExtensionHandlers")
            .field("extensions", &self.extensions)
            .field("kinds", &kinds)
            .finish()
    }
}

impl ExtensionHandlers {
    /// Registers `handler` for frame `kind` of extension `id`.
    pub(crate) fn register(
        &mut self,
        id: ExtensionId,
        kind: u8,
        handler: ExtensionHandler,
    ) -> Result<(), TransportError> {
        self.extensions.register(id, [kind])?;
        self.handlers.insert(kind, handler);
        Ok(())
    }

    /// Adds these extensions to a connection's: a kind owned by another id
    /// there is an error.
    pub(crate) fn declare(&self, into: &mut Extensions) -> Result<(), TransportError> {
        let mut merged = into.clone();
        for &kind in self.handlers.keys() {
            if let Some(id) = self.extensions.owner(kind) {
                merged.register(id, [kind])?;
            }
        }
        *into = merged;
        Ok(())
    }

    /// Runs the handler of `frame`'s kind (the connection delivers only
    /// negotiated ones). A handler that panics is logged and answers
    /// nothing; the connection goes on.
    pub(crate) fn handle(&self, frame: Frame) -> Option<Frame> {
        let FrameKind::Extension(kind) = frame.kind else {
            return None;
        };
        let handler = self.handlers.get(&kind)?;
        metrics::counter!("netproto_extension_frames_total").increment(1);
        let Ok(reply) = std::panic::catch_unwind(AssertUnwindSafe(|| handler(frame))) else {
            metrics::counter!("netproto_handler_panics_total").increment(1);
            tracing::error!(kind, "extension handler panicked");
            return None;
        };
        reply
    }
}
