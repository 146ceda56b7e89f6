//! tower around the service: layers on the dispatcher's routes (a timeout,
//! load shedding) and the client as a `tower::Service` under
//! `ServiceBuilder`, its readiness following the in-flight limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[macro_use]
mod common;

use common::service::{client, client_config, start_routes, stop, Carrier};

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use netproto_service::tower::timeout::TimeoutLayer;
use netproto_service::tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use netproto_service::{Client, Dispatcher, HandlerError, ServiceError};
use netproto_wire::{ErrorCode, Message};
use tokio::sync::{mpsc, Semaphore};

/// A route that tells `entered` when a request reaches it, then waits for
/// a permit of `gate` before it answers.
fn held_route(
    entered: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
) -> impl Fn(Message) -> futures_util::future::BoxFuture<'static, Result<Message, HandlerError>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |msg| {
        let entered = entered.clone();
        let gate = gate.clone();
        async move {
            let _ = entered.send(());
            gate.acquire().await.unwrap().forget();
            Ok(msg)
        }
        .boxed()
    }
}

fn held(command: &str) -> Message {
    Message::Custom {
        command: command.into(),
        payload: vec![1],
    }
}

#[tokio::test]
async fn a_timeout_layer_answers_a_slow_route_with_timeout() {
    let mut d = Dispatcher::new();
    d.register_async("NEVER", |_| std::future::pending());
    d.register("ECHO", Ok);
    // Every route registered so far gets the timeout.
    d.layer(TimeoutLayer::new(Duration::from_millis(200)));
    let r = start_routes(Carrier::Tcp, d).await;
    let c = client(&r).await;
    match c.call(held("NEVER")).await {
        Err(ServiceError::Remote { code, .. }) => assert_eq!(code, ErrorCode::TIMEOUT),
        other => panic!("expected ERR TIMEOUT, got {other:?}"),
    }
    let echo = Message::Echo("still here".into());
    assert_eq!(c.call(echo.clone()).await.unwrap(), echo);
    stop(r, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_full_route_sheds_load_with_busy() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let mut d = Dispatcher::new();
    d.service(
        "HOLD",
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1)
            .service(service_fn(held_route(entered_tx, gate.clone()))),
    );
    d.register("ECHO", Ok);
    let r = start_routes(Carrier::Tcp, d).await;
    let c = client(&r).await;

    let first = tokio::spawn({
        let c = c.clone();
        async move { c.call(held("HOLD")).await }
    });
    entered.recv().await.unwrap();
    // The route's one place is taken: the next request is shed at once.
    match c.call(held("HOLD")).await {
        Err(ServiceError::Remote { code, .. }) => assert_eq!(code, ErrorCode::BUSY),
        other => panic!("expected ERR BUSY, got {other:?}"),
    }
    // Other routes are not limited.
    let echo = Message::Echo("free".into());
    assert_eq!(c.call(echo.clone()).await.unwrap(), echo);

    gate.add_permits(1);
    assert_eq!(first.await.unwrap().unwrap(), held("HOLD"));
    // The place is free again.
    gate.add_permits(1);
    assert_eq!(c.call(held("HOLD")).await.unwrap(), held("HOLD"));
    stop(r, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_client_is_a_tower_service_ready_while_it_has_room() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let mut d = Dispatcher::new();
    d.register_async("HOLD", held_route(entered_tx, gate.clone()));
    d.register("PING", |_| Ok(Message::Pong));
    let r = start_routes(Carrier::Tcp, d).await;
    let mut cfg = client_config(&r);
    cfg.max_in_flight = 1;
    let c = Client::connect(r.handle.endpoint(), cfg).await.unwrap();

    let mut svc = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .service(c.service());
    let answer = svc
        .ready()
        .await
        .unwrap()
        .call(Message::Ping)
        .await
        .unwrap();
    assert_eq!(answer, Message::Pong);

    // One call in flight fills the client: a second service is not ready.
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move { c.call(held("HOLD")).await }
    });
    entered.recv().await.unwrap();
    let mut other = c.service();
    assert!(other.ready().now_or_never().is_none(), "ready while full");
    gate.add_permits(1);
    in_flight.await.unwrap().unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(5), other.ready())
        .await
        .expect("ready once the call ended")
        .unwrap();
    assert_eq!(ready.call(Message::Ping).await.unwrap(), Message::Pong);

    // tower's timeout over the client: the error is tower's `Elapsed`.
    let mut quick = ServiceBuilder::new()
        .timeout(Duration::from_millis(100))
        .service(c.service());
    let err = quick
        .ready()
        .await
        .unwrap()
        .call(held("HOLD"))
        .await
        .unwrap_err();
    assert!(
        err.is::<netproto_service::tower::timeout::error::Elapsed>(),
        "{err}"
    );
    gate.add_permits(1);
    stop(r, Duration::from_secs(2)).await;
}
