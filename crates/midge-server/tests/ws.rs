//! WebSocket listeners (the spec's section 6) over loopback, with
//! async-tungstenite as the peer: sub-protocol negotiation, packets split
//! across and packed into frames, text frames, wrong paths, and WebSocket
//! over TLS. Each test runs on tokio and smol.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub
)]

mod tls_support;

use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncRead, AsyncWrite, StreamExt};
use futures_rustls::TlsConnector;
use futures_sink::Sink;
use midge_runtime::Runtime;
use midge_server::{ListenerKind, TlsOptions};
use tls_support::mqtt::{self, bounded, within, Running};
use tls_support::{localhost, Pki};

fn ws_kind() -> ListenerKind {
    ListenerKind::Ws {
        path: "/mqtt".into(),
    }
}

/// The WebSocket upgrade to `path` offering `protocols` (none when empty).
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    path: &str,
    protocols: &str,
) -> Result<(WebSocketStream<S>, Option<String>), String> {
    let mut request = format!("ws://127.0.0.1{path}")
        .into_client_request()
        .unwrap();
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocols).unwrap(),
        );
    }
    let (ws, response) = async_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| e.to_string())?;
    let selected = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, selected))
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, message: Message) {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *ws).poll_ready(cx))
        .await
        .unwrap();
    std::pin::Pin::new(&mut *ws).start_send(message).unwrap();
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *ws).poll_flush(cx))
        .await
        .unwrap();
}

/// The bytes of binary messages until `n` bytes came.
async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    n: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => out.extend_from_slice(&data),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
    out
}

/// Whether the server ends the WebSocket (close, end or error) within 10 s.
async fn ends<R: Runtime, S: AsyncRead + AsyncWrite + Unpin>(
    rt: &R,
    ws: &mut WebSocketStream<S>,
) -> bool {
    within(rt, 10, async {
        loop {
            match ws.next().await {
                None | Some(Err(_) | Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_some()
}

async fn connected<R: Runtime>(
    rt: &R,
    server: &Running,
    id: &str,
) -> WebSocketStream<R::TcpStream> {
    let tcp = rt.connect_tcp(server.addr).await.unwrap();
    let (mut ws, _) = upgrade(tcp, "/mqtt", "mqtt").await.unwrap();
    send(&mut ws, Message::Binary(mqtt::connect(id, None).into())).await;
    assert_eq!(
        receive(&mut ws, 4).await,
        mqtt::connack(midge_codec::ConnectReturnCode::Accepted)
    );
    ws
}

pub async fn mqtt_6_0_0_4_server_selects_mqtt_among_offered<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, ws_kind()).await;
        let tcp = rt.connect_tcp(server.addr).await.unwrap();
        let (_ws, selected) = upgrade(tcp, "/mqtt", "mqttv3.1, mqtt").await.unwrap();
        assert_eq!(selected.as_deref(), Some("mqtt"));
        server.stop().await;
    })
    .await;
}

pub async fn mqtt_6_0_0_3_upgrade_without_mqtt_is_refused<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, ws_kind()).await;
        for offered in ["", "chat", "mqttv5"] {
            let tcp = rt.connect_tcp(server.addr).await.unwrap();
            let err = upgrade(tcp, "/mqtt", offered)
                .await
                .map(|_| ())
                .unwrap_err();
            assert!(err.contains("400"), "{offered}: {err}");
        }
        // Still serving.
        drop(connected(&rt, &server, "after").await);
        server.stop().await;
    })
    .await;
}

pub async fn ws_wrong_path_is_refused<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, ws_kind()).await;
        let tcp = rt.connect_tcp(server.addr).await.unwrap();
        let err = upgrade(tcp, "/other", "mqtt")
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("404"), "{err}");
        server.stop().await;
    })
    .await;
}

pub async fn mqtt_6_0_0_2_packets_span_and_share_frames<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, ws_kind()).await;
        let tcp = rt.connect_tcp(server.addr).await.unwrap();
        let (mut ws, _) = upgrade(tcp, "/mqtt", "mqtt").await.unwrap();
        // CONNECT in three frames, one of them a single byte.
        let connect = mqtt::connect("spanning", None);
        for part in [&connect[..1], &connect[1..7], &connect[7..]] {
            send(&mut ws, Message::Binary(part.to_vec().into())).await;
        }
        assert_eq!(receive(&mut ws, 4).await, [0x20, 0x02, 0x00, 0x00]);
        // SUBSCRIBE and a PUBLISH to it in one frame.
        let message = mqtt::publish("s/1", b"shared frame");
        let mut both = mqtt::subscribe("s/#");
        both.extend_from_slice(&message);
        send(&mut ws, Message::Binary(both.into())).await;
        let mut expected = mqtt::SUBACK_1_QOS0.to_vec();
        expected.extend_from_slice(&message);
        assert_eq!(receive(&mut ws, expected.len()).await, expected);
        drop(ws);
        server.stop().await;
    })
    .await;
}

pub async fn mqtt_6_0_0_1_text_frame_closes_the_connection<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, ws_kind()).await;
        let mut ws = connected(&rt, &server, "texter").await;
        send(&mut ws, Message::Text("hello".into())).await;
        // A close frame saying "unsupported data", then the end.
        let closing = within(&rt, 10, ws.next()).await.unwrap();
        match closing {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Unsupported);
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert!(ends(&rt, &mut ws).await);
        // Others are still served.
        drop(connected(&rt, &server, "next").await);
        server.stop().await;
    })
    .await;
}

pub async fn ws_garbage_instead_of_an_upgrade_is_closed<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, ws_kind()).await;
        let mut tcp = rt.connect_tcp(server.addr).await.unwrap();
        futures_lite::AsyncWriteExt::write_all(&mut tcp, &mqtt::connect("raw", None))
            .await
            .unwrap();
        futures_lite::AsyncWriteExt::write_all(&mut tcp, b"\r\n\r\n")
            .await
            .unwrap();
        assert!(mqtt::closes(&rt, &mut tcp).await);
        drop(connected(&rt, &server, "next").await);
        server.stop().await;
    })
    .await;
}

pub async fn wss_publish_and_subscribe<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let kind = ListenerKind::Wss {
            path: "/mqtt".into(),
            tls: TlsOptions::new(pki.path("server.pem"), pki.path("server.key")),
        };
        let server = Running::start(&rt, kind).await;
        let tcp = rt.connect_tcp(server.addr).await.unwrap();
        let tls = TlsConnector::from(pki.client_config("ca.pem", None))
            .connect(localhost(), tcp)
            .await
            .unwrap();
        let (mut ws, selected) = upgrade(tls, "/mqtt", "mqtt").await.unwrap();
        assert_eq!(selected.as_deref(), Some("mqtt"));
        send(&mut ws, Message::Binary(mqtt::connect("wss", None).into())).await;
        assert_eq!(receive(&mut ws, 4).await, [0x20, 0x02, 0x00, 0x00]);
        send(&mut ws, Message::Binary(mqtt::subscribe("w").into())).await;
        assert_eq!(receive(&mut ws, 5).await, mqtt::SUBACK_1_QOS0);
        let message = mqtt::publish("w", b"secure websocket");
        send(&mut ws, Message::Binary(message.clone().into())).await;
        assert_eq!(receive(&mut ws, message.len()).await, message);
        drop(ws);
        server.stop().await;
    })
    .await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_tokio {
            use midge_tokio::TokioRuntime;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(TokioRuntime::from_handle(tokio::runtime::Handle::current())).await;
                }
            )*
        }
        mod on_smol {
            use midge_smol::{Runtime as _, SmolRuntime};
            $(
                #[test]
                fn $name() {
                    smol::block_on(super::$name(SmolRuntime::current()));
                }
            )*
        }
    };
}

on_both!(
    mqtt_6_0_0_4_server_selects_mqtt_among_offered,
    mqtt_6_0_0_3_upgrade_without_mqtt_is_refused,
    ws_wrong_path_is_refused,
    mqtt_6_0_0_2_packets_span_and_share_frames,
    mqtt_6_0_0_1_text_frame_closes_the_connection,
    ws_garbage_instead_of_an_upgrade_is_closed,
    wss_publish_and_subscribe,
);
