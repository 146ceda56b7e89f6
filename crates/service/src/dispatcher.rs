//! Routing requests to handlers by opcode.
//!
//! Handlers are registered before the server runs; the server then shares the
//! dispatcher immutably (`Arc`), so looking up a handler takes no lock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use netproto_transport::ExtensionId;
use netproto_wire::{ErrorCode, Frame, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Codec;
use crate::error::HandlerError;
use crate::extension::ExtensionHandlers;
use crate::middleware::{boxed, call_in_place, BoxError, RouteService};
use tower::{service_fn, Layer, Service};

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
    /// A tower service (`service`, or any route after `layer`): polled
    /// once on the connection's task, spawned only if not ready.
    Service(RouteService),
}

impl Handler {
    /// This handler as a tower service, for a layer to wrap.
    fn into_service(self) -> RouteService {
        match self {
            Self::Sync(h) => boxed(service_fn(move |msg| std::future::ready(h(msg)))),
            Self::Async(h) => boxed(service_fn(move |msg| h(msg))),
            Self::Service(s) => s,
        }
    }
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
    extensions: ExtensionHandlers,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ops: Vec<_> = self.routes.keys().collect();
        ops.sort();
        f.debug_struct("Dispatcher")
            .field("opcodes", &ops)
            .field("extensions", &self.extensions)
            .finish()
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

    /// Registers a typed route with postcard bodies: as
    /// [`Dispatcher::route_with`] with [`Codec::Postcard`].
    pub fn route<Req, Resp, F, Fut>(&mut self, opcode: &str, handler: F) -> &mut Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    {
        self.route_with(opcode, Codec::Postcard, handler)
    }

    /// Registers a typed route: requests are `Message::Custom { command:
    /// opcode, payload }` whose payload is a `Req` in `codec`; the answer
    /// is a `Custom` message with the same command and the `Resp` in the
    /// same codec (what [`crate::Client::request`] sends and expects). The
    /// payload is decoded once, straight into `Req`; one that does not
    /// decode is answered `BAD_REQUEST` naming the type and the codec.
    pub fn route_with<Req, Resp, F, Fut>(
        &mut self,
        opcode: &str,
        codec: Codec,
        handler: F,
    ) -> &mut Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.routes.insert(
            opcode.to_owned(),
            Handler::Async(Arc::new(move |msg| {
                let handler = handler.clone();
                Box::pin(async move {
                    // The answer reuses the request's command (the route's
                    // opcode): no allocation for it.
                    let Message::Custom { command, payload } = msg else {
                        return Err(HandlerError::bad_request(
                            "typed routes take Custom messages",
                        ));
                    };
                    let req: Req = codec
                        .decode(&payload)
                        .map_err(|e| HandlerError::bad_request(e.to_string()))?;
                    drop(payload);
                    let resp = handler(req).await?;
                    let payload = codec
                        .encode(&resp)
                        .map_err(|e| HandlerError::internal(e.to_string()))?;
                    Ok(Message::Custom { command, payload })
                })
            })),
        );
        self
    }

    /// Registers a [`tower::Service`] for `opcode`: build it with
    /// `tower::ServiceBuilder` to give one route its own timeout,
    /// concurrency limit or load shedding. Errors become ERR answers as
    /// [`HandlerError::from_layer`] says.
    ///
    /// The service's future is polled once on the connection's task: one
    /// that is ready at once (a synchronous handler behind layers that did
    /// not wait) is answered without spawning a task.
    pub fn service<S>(&mut self, opcode: &str, service: S) -> &mut Self
    where
        S: Service<Message, Response = Message> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.routes
            .insert(opcode.to_owned(), Handler::Service(boxed(service)));
        self
    }

    /// Wraps every route registered **so far** in `layer` (a
    /// [`tower::Layer`]: `tower::timeout::TimeoutLayer`,
    /// `ConcurrencyLimitLayer`, `LoadShedLayer`, a `ServiceBuilder`, or one
    /// of your own); routes registered later are not wrapped, as with
    /// axum's `Router::layer`. Each route gets its own layered service
    /// (a concurrency limit counts per route). Errors become ERR answers as
    /// [`HandlerError::from_layer`] says.
    pub fn layer<L>(&mut self, layer: L) -> &mut Self
    where
        L: Layer<RouteService>,
        L::Service: Service<Message, Response = Message> + Clone + Send + Sync + 'static,
        <L::Service as Service<Message>>::Error: Into<BoxError>,
        <L::Service as Service<Message>>::Future: Send + 'static,
    {
        for handler in self.routes.values_mut() {
            let inner = handler.clone().into_service();
            *handler = Handler::Service(boxed(layer.layer(inner)));
        }
        self
    }

    /// Handles extension frames of `kind` (`0x80`–`0xff`), which belongs to
    /// extension `id`: the server advertises the extension in every
    /// handshake, and frames of `kind` from clients that advertised it too
    /// reach `handler` (others are skipped by the connection). A frame the
    /// handler returns is sent back on the same connection.
    ///
    /// ```
    /// use netproto_service::Dispatcher;
    /// use netproto_transport::ExtensionId;
    /// use netproto_wire::Frame;
    ///
    /// let mut d = Dispatcher::new();
    /// // Extension 0 owns kind 0x80: echo each frame back.
    /// d.extension(ExtensionId::new(0)?, 0x80, |f: Frame| Some(f))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::ServiceError::Transport`] with
    /// [`netproto_transport::TransportError::Extension`] if `kind` is not an
    /// extension kind or belongs to another id.
    pub fn extension<F>(
        &mut self,
        id: ExtensionId,
        kind: u8,
        handler: F,
    ) -> crate::Result<&mut Self>
    where
        F: Fn(Frame) -> Option<Frame> + Send + Sync + 'static,
    {
        self.extensions.register(id, kind, Arc::new(handler))?;
        Ok(self)
    }

    pub(crate) fn extension_handlers(&self) -> &ExtensionHandlers {
        &self.extensions
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
            Some(Handler::Service(s)) => call_in_place(s.clone(), message),
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

/// Encodes `value` as the postcard payload of a typed route request
/// ([`crate::Client::request`] does this and the call in one).
///
/// # Errors
/// [`crate::ServiceError::Codec`] naming the type.
pub fn encode_request<T: Serialize>(
    command: &str,
    value: &T,
) -> Result<Message, crate::ServiceError> {
    Ok(Message::Custom {
        command: command.to_owned(),
        payload: Codec::Postcard.encode(value)?,
    })
}

/// Decodes the postcard payload of a typed route response.
///
/// # Errors
/// [`crate::ServiceError::Codec`] if it does not decode as `T`;
/// [`crate::ServiceError::UnexpectedAnswer`] if it is not a `Custom`
/// message.
pub fn decode_response<T: DeserializeOwned>(message: &Message) -> Result<T, crate::ServiceError> {
    typed_body(message, Codec::Postcard)
}

/// The body of a typed answer, decoded once.
pub(crate) fn typed_body<T: DeserializeOwned>(
    message: &Message,
    codec: Codec,
) -> Result<T, crate::ServiceError> {
    match message {
        Message::Custom { payload, .. } => Ok(codec.decode(payload)?),
        other => Err(crate::ServiceError::UnexpectedAnswer {
            opcode: other.opcode().to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_routes() -> Dispatcher {
        let mut d = Dispatcher::new();
        d.register("ECHO", Ok);
        d.register_async("LATER", |msg| async move {
            tokio::task::yield_now().await;
            Ok(msg)
        });
        d
    }

    #[test]
    fn a_layered_synchronous_route_is_still_answered_in_place() {
        let mut d = echo_routes();
        d.layer(tower::layer::util::Identity::new());
        let msg = Message::Echo("x".into());
        assert!(matches!(d.route_message(msg.clone()), Routed::Done(Ok(m)) if m == msg));
        // An async one that waits is handed on, to be spawned.
        let later = Message::Custom {
            command: "LATER".into(),
            payload: vec![],
        };
        assert!(matches!(d.route_message(later), Routed::Pending(_)));
    }

    #[test]
    fn routes_registered_after_a_layer_are_not_wrapped() {
        let mut d = echo_routes();
        d.layer(tower::layer::util::Identity::new());
        d.register("PING", |_| Ok(Message::Pong));
        assert!(matches!(d.routes.get("PING"), Some(Handler::Sync(_))));
        assert!(matches!(d.routes.get("ECHO"), Some(Handler::Service(_))));
    }
}
