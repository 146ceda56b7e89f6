//! The "easy" typed API: serde values in and out of `Client::request`, in
//! postcard or JSON, over TCP and UDP; a wrong type is a typed error that
//! names the type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[macro_use]
mod common;

use common::service::{client, start_routes, stop, Carrier};

use std::time::Duration;

use netproto_service::{Codec, Direction, Dispatcher, ServiceError};
use netproto_wire::{ErrorCode, Message};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rect {
    w: u32,
    h: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Area {
    area: u64,
    label: String,
}

async fn area(r: Rect) -> Result<Area, netproto_service::HandlerError> {
    Ok(Area {
        area: u64::from(r.w) * u64::from(r.h),
        label: format!("{}x{}", r.w, r.h),
    })
}

fn routes() -> Dispatcher {
    let mut d = Dispatcher::new();
    d.route("AREA", area);
    d.route_with("AREA_JSON", Codec::Json, area);
    d.register("PING", |_| Ok(Message::Pong));
    d
}

async fn typed_requests_round_trip_in_both_codecs(carrier: Carrier) {
    let r = start_routes(carrier, routes()).await;
    let c = client(&r).await;
    let rect = Rect { w: 3, h: 70_000 };
    let want = area(rect.clone()).await.unwrap();
    // The client's default codec is postcard.
    assert_eq!(c.request::<_, Area>("AREA", &rect).await.unwrap(), want);
    assert_eq!(
        c.request_with::<_, Area>(Codec::Json, "AREA_JSON", &rect)
            .await
            .unwrap(),
        want
    );
    // A client whose codec is JSON.
    let mut cfg = common::service::client_config(&r);
    cfg.codec = Codec::Json;
    let json_client = netproto_service::Client::connect(r.handle.endpoint(), cfg)
        .await
        .unwrap();
    assert_eq!(
        json_client
            .request::<_, Area>("AREA_JSON", &rect)
            .await
            .unwrap(),
        want
    );
    // The JSON route speaks plain JSON: what a peer in another language
    // writes by hand.
    let answer = c
        .call(Message::Custom {
            command: "AREA_JSON".into(),
            payload: br#"{"w":2,"h":5}"#.to_vec(),
        })
        .await
        .unwrap();
    let Message::Custom { command, payload } = answer else {
        panic!("not a typed answer: {answer:?}")
    };
    assert_eq!(command, "AREA_JSON");
    assert_eq!(payload, br#"{"area":10,"label":"2x5"}"#);
    stop(r, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn typed_requests_round_trip_in_both_codecs_over_tcp() {
    typed_requests_round_trip_in_both_codecs(Carrier::Tcp).await;
}

#[tokio::test]
async fn typed_requests_round_trip_in_both_codecs_over_udp() {
    typed_requests_round_trip_in_both_codecs(Carrier::Udp).await;
}

#[tokio::test]
async fn a_wrong_type_is_a_typed_error_that_names_it() {
    let r = start_routes(Carrier::Tcp, routes()).await;
    let c = client(&r).await;
    let rect = Rect { w: 1, h: 2 };

    // The server cannot read the request: postcard bytes to a JSON route.
    match c
        .request_with::<_, Area>(Codec::Postcard, "AREA_JSON", &rect)
        .await
    {
        Err(ServiceError::Remote { code, reason }) => {
            assert_eq!(code, ErrorCode::BAD_REQUEST);
            assert!(reason.contains("service_typed::Rect"), "{reason}");
            assert!(reason.contains("json"), "{reason}");
        }
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }

    // The client cannot read the answer: an `Area` is not a `Vec<u64>`.
    match c.request::<_, Vec<u64>>("AREA", &rect).await {
        Err(ServiceError::Codec(e)) => {
            assert_eq!(e.direction, Direction::Decode);
            assert_eq!(e.codec, Codec::Postcard);
            assert!(e.type_name.contains("Vec<u64>"), "{e}");
        }
        other => panic!("expected a codec error, got {other:?}"),
    }

    // The answer is not a typed body at all.
    match c.request::<_, ()>("PING", &()).await {
        Err(ServiceError::UnexpectedAnswer { opcode }) => assert_eq!(opcode, "PONG"),
        other => panic!("expected UnexpectedAnswer, got {other:?}"),
    }

    // None of this cost the connection.
    assert_eq!(c.request::<_, Area>("AREA", &rect).await.unwrap().area, 2);
    assert!(!c.is_closed());
    stop(r, Duration::from_secs(2)).await;
}

#[test]
fn the_typed_body_example_in_wire_md_is_what_a_json_route_reads() {
    let request = Message::Custom {
        command: "AREA_JSON".into(),
        payload: Codec::Json.encode(&Rect { w: 2, h: 5 }).unwrap(),
    };
    let mut bytes = Vec::new();
    request.encode(&mut bytes).unwrap();
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let spec = include_str!("../../docs/WIRE.md");
    assert!(
        spec.contains(&hex.join(" ")),
        "WIRE.md's typed-body example is not {}",
        hex.join(" ")
    );
}
