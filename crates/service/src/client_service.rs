//! The client's other faces: typed calls (a serde value in, a serde value
//! out, in the client's [`Codec`]) and a [`tower::Service`], so tower's
//! retry, timeout, rate-limit and balancing layers compose with it.

use std::task::{Context, Poll};

use netproto_transport::BoxFuture;
use netproto_wire::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::PollSemaphore;

use crate::client::Client;
use crate::codec::Codec;
use crate::dispatcher::typed_body;
use crate::error::{Result, ServiceError};

impl Client {
    /// Calls a typed route: `req` is encoded in the client's codec
    /// ([`crate::ClientConfig::codec`]) as a `Custom` message for `opcode`,
    /// and the answer's body is decoded once, into `Resp`. The route must
    /// be registered with the same codec ([`crate::Dispatcher::route_with`]).
    ///
    /// # Errors
    /// As [`Client::call`]; [`ServiceError::Codec`] naming the type if
    /// `req` does not encode or the answer is not a `Resp` (the server's
    /// own decoding failure comes back as [`ServiceError::Remote`] with
    /// `BAD_REQUEST` and the type's name); [`ServiceError::UnexpectedAnswer`]
    /// if the answer is not a typed body.
    pub async fn request<Req, Resp>(&self, opcode: &str, req: &Req) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.request_with(self.inner.cfg.codec, opcode, req).await
    }

    /// [`Client::request`] in `codec`, whatever the client's default.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn request_with<Req, Resp>(
        &self,
        codec: Codec,
        opcode: &str,
        req: &Req,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let request = Message::Custom {
            command: opcode.to_owned(),
            payload: codec.encode(req)?,
        };
        typed_body(&self.call(request).await?, codec)
    }

    /// This client as a [`tower::Service`] of calls.
    pub fn service(&self) -> ClientService {
        ClientService {
            client: self.clone(),
            permits: PollSemaphore::new(self.inner.in_flight.clone()),
            permit: None,
        }
    }
}

/// A [`Client`] as a [`tower::Service<Message>`]: `poll_ready` is ready
/// while the client has room for one more call in flight
/// ([`crate::ClientConfig::max_in_flight`], shared with every clone and
/// with [`Client::call`]); `call` is [`Client::call`].
///
/// ```
/// # use netproto_service::{Client, ServiceError};
/// # async fn f(client: Client) -> Result<(), netproto_service::BoxError> {
/// use std::time::Duration;
/// use netproto_service::tower::{Service, ServiceBuilder, ServiceExt};
/// use netproto_wire::Message;
///
/// let mut svc = ServiceBuilder::new()
///     .timeout(Duration::from_secs(2))
///     .service(client.service());
/// let answer = svc.ready().await?.call(Message::Ping).await?;
/// assert_eq!(answer, Message::Pong);
/// # Ok(()) }
/// ```
pub struct ClientService {
    client: Client,
    permits: PollSemaphore,
    /// Taken by `poll_ready`, given to the next `call`.
    permit: Option<OwnedSemaphorePermit>,
}

impl Clone for ClientService {
    /// A clone shares the client and its limit, not a place taken by
    /// `poll_ready` (as tower's own `ConcurrencyLimit` does).
    fn clone(&self) -> Self {
        self.client.service()
    }
}

impl std::fmt::Debug for ClientService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientService")
            .field("client", &self.client)
            .field("ready", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl tower::Service<Message> for ClientService {
    type Response = Message;
    type Error = ServiceError;
    type Future = BoxFuture<'static, Result<Message>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.permit.is_none() {
            match self.permits.poll_acquire(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(p)) => self.permit = Some(p),
                // The client never closes its semaphore.
                Poll::Ready(None) => return Poll::Ready(Err(ServiceError::ConnectionClosed)),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Message) -> Self::Future {
        // Without a `poll_ready` first (against tower's contract, but not
        // worth a panic), the call waits for its place itself.
        let permit = self.permit.take();
        let client = self.client.clone();
        Box::pin(async move {
            client
                .call_holding(request, permit, netproto_transport::Priority::default())
                .await
        })
    }
}
