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

/// The boxed future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Message, HandlerError>> + Send>>;

type Handler = Arc<dyn Fn(Message) -> HandlerFuture + Send + Sync>;

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
    pub fn register<F>(&mut self, opcode: &str, handler: F) -> &mut Self
    where
        F: Fn(Message) -> Result<Message, HandlerError> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.routes.insert(
            opcode.to_owned(),
            Arc::new(move |msg| {
                let handler = handler.clone();
                Box::pin(async move { handler(msg) })
            }),
        );
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
            Arc::new(move |msg| Box::pin(handler(msg))),
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
            Arc::new(move |msg| {
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
            }),
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
        if let Some(h) = self.routes.get(message.opcode()) {
            return h(message);
        }
        let op = message.opcode().to_owned();
        Box::pin(async move {
            Err(HandlerError {
                code: ErrorCode::UNKNOWN_OPCODE,
                reason: format!("no handler for opcode {op:?}"),
            })
        })
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
