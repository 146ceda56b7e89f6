//! Handlers as tower services: what lets the dispatcher take tower layers
//! (timeouts, concurrency limits, load shedding) around its routes, and
//! how a layer's errors become ERR answers.

use std::task::{Context, Poll, Waker};

use netproto_wire::{ErrorCode, Message};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::dispatcher::{HandlerFuture, Routed};
use crate::error::HandlerError;

/// The error type tower's layers produce.
pub use tower::BoxError;

/// A route as the dispatcher keeps it once layered: what a
/// [`tower::Layer`] given to [`crate::Dispatcher::layer`] wraps.
pub type RouteService = BoxCloneSyncService<Message, Message, HandlerError>;

/// `service` with its errors turned into [`HandlerError`]s, type-erased.
pub(crate) fn boxed<S>(service: S) -> RouteService
where
    S: Service<Message, Response = Message> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_err(|e: S::Error| HandlerError::from_layer(e.into())))
}

/// One call of a (cloned) route service, tried here first: a service that
/// is ready at once is called at once, and a future that is ready at once
/// is answered on the connection's task without spawning one (with an
/// empty layer, W6 lost 13 % when every call went through an async block
/// and a task). Polling with a waker that does nothing is sound: whoever
/// polls next (the spawned task) registers its own, as every poll must.
pub(crate) fn call_in_place(mut service: RouteService, message: Message) -> Routed {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Routed::Done(Err(e)),
        // A concurrency limit: wait for a place in the handler's task.
        Poll::Pending => {
            return Routed::Pending(Box::pin(async move {
                service.ready().await?;
                service.call(message).await
            }))
        }
    }
    let mut fut: HandlerFuture = service.call(message);
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(result) => Routed::Done(result),
        Poll::Pending => Routed::Pending(fut),
    }
}

impl HandlerError {
    /// The ERR answer for an error from a tower layer or service: a
    /// [`HandlerError`] passes through unchanged, tower's timeout
    /// (`Elapsed`) is `TIMEOUT`, its load shedding (`Overloaded`) is
    /// `BUSY`, anything else is `INTERNAL` with the error's text.
    pub fn from_layer(error: BoxError) -> Self {
        let error = match error.downcast::<Self>() {
            Ok(handler) => return *handler,
            Err(other) => other,
        };
        let code = if error.is::<tower::timeout::error::Elapsed>() {
            ErrorCode::TIMEOUT
        } else if error.is::<tower::load_shed::error::Overloaded>() {
            ErrorCode::BUSY
        } else {
            ErrorCode::INTERNAL
        };
        Self {
            code,
            reason: error.to_string(),
        }
    }
}
