//! Routing requests to handlers by opcode.
//!
//! Handlers are registered before the server runs; the server then shares the
//! dispatcher immutably (`Arc`), so looking up a handler takes no lock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use netproto_wire::{ErrorCode, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::HandlerError;

/// Bytes of an unknown opcode quoted back in the ERR reason.
const MAX_OPCODE_ECHO: usize = 64;

/// The boxed future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Message, HandlerError>> + Send>>;

type AsyncHandler = Arc<dyn Fn(Message) -> HandlerFuture + Send + Sync>;
type SyncHandler = Arc<dyn Fn(Message) -> Result<Message, HandlerError> + Send + Sync>;

#[derive(Clone)]
enum Handler {
    /// Run on the connection's task, no task spawned (`register`).
    Sync(SyncHandler),
    /// Run in a task of its own (`register_async`, `route`).
    Async(AsyncHandler),
}

/// A request after routing: answered already, or still to run.
pub(crate) enum Routed {
    Done(Result<Message, HandlerError>),
    Pending(HandlerFuture),
}

/// Maps opcodes (`"PING"`, `"ECHO"`, a `Custom` command, …) to handlers.
#[derive(Clone, Default)]
pub struct Dispatcher {
    routes: HashMap<String, Handler>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ops: Vec<_> = self.routes.keys().collect();
        ops.sort();
        f.debug_struct("Dispatcher").field("opcodes", &ops).finish()
    }
}

impl Dispatcher {
    /// An empty dispatcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a synchronous handler for `opcode`, replacing any earlier one.
    ///
    /// The server runs it on the connection's own task, without spawning
    /// (the cheapest path), so it must be quick and must not block: use
    /// [`Dispatcher::register_async`] for handlers that wait on anything.
    pub fn register<F>(&mut self, opcode: &str, handler: F) -> &mut Self
    where
        F: Fn(Message) -> Result<Message, HandlerError> + Send + Sync + 'static,
    {
        self.routes
            .insert(opcode.to_owned(), Handler::Sync(Arc::new(handler)));
        self
    }

    /// Registers an async handler for `opcode`.
    pub fn register_async<F, Fut>(&mut self, opcode: &str, handler: F) -> &mut Self
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Message, HandlerError>> + Send + 'static,
    {
        self.routes.insert(
            opcode.to_owned(),
            Handler::Async(Arc::new(move |msg| Box::pin(handler(msg)))),
        );
        self
    }

    /// Registers a typed route: requests are `Message::Custom { command:
    /// opcode, payload }` with a postcard-encoded `Req`; the answer is a
    /// `Custom` message with the same command and a postcard-encoded `Resp`.
    /// A payload that does not decode is answered with `BAD_REQUEST`.
    pub fn route<Req, Resp, F, Fut>(&mut self, opcode: &str, handler: F) -> &mut Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let command = opcode.to_owned();
        self.routes.insert(
            opcode.to_owned(),
            Handler::Async(Arc::new(move |msg| {
                let handler = handler.clone();
                let command = command.clone();
                Box::pin(async move {
                    let Message::Custom { payload, .. } = msg else {
                        return Err(HandlerError::bad_request(
                            "typed routes take Custom messages",
                        ));
                    };
                    let req: Req = postcard::from_bytes(&payload).map_err(|e| {
                        HandlerError::bad_request(format!("payload does not decode: {e}"))
                    })?;
                    let resp = handler(req).await?;
                    let payload = postcard::to_allocvec(&resp).map_err(|e| {
                        HandlerError::internal(format!("response does not encode: {e}"))
                    })?;
                    Ok(Message::Custom { command, payload })
                })
            })),
        );
        self
    }

    /// Whether `opcode` has a handler.
    pub fn handles(&self, opcode: &str) -> bool {
        self.routes.contains_key(opcode)
    }

    /// Runs the handler for `message`'s opcode; an unknown opcode is an
    /// `UNKNOWN_OPCODE` error.
    pub fn dispatch(&self, message: Message) -> HandlerFuture {
        match self.route_message(message) {
            Routed::Pending(fut) => fut,
            Routed::Done(result) => Box::pin(async move { result }),
        }
    }

    /// Runs a synchronous handler (or answers an unknown opcode) now, or
    /// returns the future of an async one. A panic in a synchronous handler
    /// propagates to the caller, which catches it.
    pub(crate) fn route_message(&self, message: Message) -> Routed {
        match self.routes.get(message.opcode()) {
            Some(Handler::Sync(h)) => Routed::Done(h(message)),
            Some(Handler::Async(h)) => Routed::Pending(h(message)),
            None => Routed::Done(Err(HandlerError {
                code: ErrorCode::UNKNOWN_OPCODE,
                // The opcode is the client's: shortened before it is
                // escaped, so an answer never grows with the request.
                reason: format!(
                    "no handler for opcode {:?}",
                    crate::error::prefix(message.opcode(), MAX_OPCODE_ECHO)
                ),
            })),
        }
    }
}

/// Encodes `value` as the payload of a typed route request.
///
/// # Errors
/// The postcard error as text.
pub fn encode_request<T: Serialize>(
    command: &str,
    value: &T,
) -> Result<Message, crate::ServiceError> {
    let payload =
        postcard::to_allocvec(value).map_err(|e| crate::ServiceError::Payload(e.to_string()))?;
    Ok(Message::Custom {
        command: command.to_owned(),
        payload,
    })
}

/// Decodes the payload of a typed route response.
///
/// # Errors
/// [`crate::ServiceError::Payload`] if it is not a `Custom` message or does
/// not decode as `T`.
pub fn decode_response<T: DeserializeOwned>(message: &Message) -> Result<T, crate::ServiceError> {
    match message {
        Message::Custom { payload, .. } => {
            postcard::from_bytes(payload).map_err(|e| crate::ServiceError::Payload(e.to_string()))
        }
        other => Err(crate::ServiceError::Payload(format!(
            "expected a Custom response, got {}",
            other.opcode()
        ))),
    }
}
