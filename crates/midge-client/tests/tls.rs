//! The client over `mqtts://`, `ws://` and `wss://` against a midge server
//! on loopback, with certificates made at test time: round trips, client
//! certificates, untrusted, expired and refused certificates, `insecure`,
//! and WebSocket paths. Each test runs on tokio and smol.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub
)]

use std::future::Future;
use std::net::SocketAddr;

use futures_lite::future;
use midge_client::{Client, ClientError, ConnectOptions, QoS, Reconnect, TlsOptions};
use midge_runtime::{Duration, Runtime};
use midge_server::{Listener, ListenerKind, Server, ServerHandle, ServerOptions};
use midge_testkit::pki::Pki;

async fn bounded<R: Runtime, F: Future<Output = ()>>(rt: &R, test: F) {
    let limit = rt.clone();
    future::or(test, async move {
        limit.sleep(Duration::from_secs(20)).await;
        panic!("test did not finish within 20 s");
    })
    .await;
}

fn server_tls(pki: &Pki, prefix: &str) -> midge_server::TlsOptions {
    midge_server::TlsOptions::new(
        pki.path(&format!("{prefix}.pem")),
        pki.path(&format!("{prefix}.key")),
    )
}

/// A server with one listener of each kind given; their addresses.
async fn serve<R: Runtime>(rt: &R, kinds: Vec<ListenerKind>) -> (Vec<SocketAddr>, ServerHandle) {
    let options = ServerOptions {
        listeners: Vec::new(),
        transports: kinds
            .into_iter()
            .map(|kind| Listener {
                addr: "127.0.0.1:0".parse().unwrap(),
                kind,
            })
            .collect(),
        shards: 1,
        ..ServerOptions::default()
    };
    let server = Server::bind(rt.clone(), options).await.unwrap();
    let addrs = server.local_addrs();
    let handle = server.handle();
    rt.spawn(async move {
        server.run().await.unwrap();
    });
    (addrs, handle)
}

fn options(url: &str, id: &str, tls: Option<TlsOptions>) -> ConnectOptions {
    let mut options = ConnectOptions::new(url, id)
        .unwrap()
        .with_reconnect(Reconnect::disabled())
        .with_connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        options = options.with_tls(tls);
    }
    options
}

/// Subscribes, publishes to itself at QoS 1, receives it.
async fn round_trip<R: Runtime>(rt: &R, url: &str, tls: Option<TlsOptions>) {
    let (client, mut messages) = Client::connect_with(rt.clone(), options(url, "rt", tls))
        .await
        .unwrap();
    assert_eq!(
        client.subscribe("rt/#", QoS::AtLeastOnce).await.unwrap(),
        QoS::AtLeastOnce
    );
    // Large enough to span several TLS records and WebSocket reads.
    let payload = vec![0x5A; 100_000];
    client
        .publish("rt/1", payload.clone(), QoS::AtLeastOnce, false)
        .unwrap()
        .await
        .unwrap();
    let message = messages.recv().await.unwrap();
    assert_eq!(message.topic.as_str(), "rt/1");
    assert_eq!(message.payload.as_ref(), payload.as_slice());
    client.disconnect().await.unwrap();
}

async fn connect_error<R: Runtime>(rt: &R, url: &str, tls: Option<TlsOptions>) -> ClientError {
    Client::connect_with(rt.clone(), options(url, "e", tls))
        .await
        .map(|_| ())
        .unwrap_err()
}

fn trusting(pki: &Pki, ca: &str) -> TlsOptions {
    TlsOptions::default().with_ca_file(pki.path(ca))
}

// The client offers `mqtt` and insists that the broker selects it.
// covers: MQTT-6.0.0-3, MQTT-6.0.0-4
pub async fn mqtts_ws_and_wss_round_trips<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let (addrs, handle) = serve(
            &rt,
            vec![
                ListenerKind::Tls(server_tls(&pki, "server")),
                ListenerKind::Ws {
                    path: "/mqtt".into(),
                },
                ListenerKind::Wss {
                    path: "/broker".into(),
                    tls: server_tls(&pki, "server"),
                },
            ],
        )
        .await;
        let port = |i: usize| addrs[i].port();
        round_trip(
            &rt,
            &format!("mqtts://localhost:{}", port(0)),
            Some(trusting(&pki, "ca.pem")),
        )
        .await;
        round_trip(&rt, &format!("ws://127.0.0.1:{}", port(1)), None).await;
        round_trip(
            &rt,
            &format!("wss://127.0.0.1:{}/broker", port(2)),
            Some(trusting(&pki, "ca.pem")),
        )
        .await;
        handle.shutdown();
        handle.closed().await;
    })
    .await;
}

pub async fn mqtts_untrusted_and_expired_server_certificates_fail<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let (addrs, handle) = serve(
            &rt,
            vec![
                ListenerKind::Tls(server_tls(&pki, "server")),
                ListenerKind::Tls(server_tls(&pki, "expired-server")),
            ],
        )
        .await;
        let good = format!("mqtts://localhost:{}", addrs[0].port());
        let expired = format!("mqtts://localhost:{}", addrs[1].port());
        match connect_error(&rt, &good, Some(trusting(&pki, "other-ca.pem"))).await {
            ClientError::Tls(reason) => assert!(reason.contains("UnknownIssuer"), "{reason}"),
            other => panic!("{other:?}"),
        }
        match connect_error(&rt, &expired, Some(trusting(&pki, "ca.pem"))).await {
            ClientError::Tls(reason) => assert!(reason.contains("expired"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // `insecure` accepts either.
        let insecure = TlsOptions::default().with_insecure(true);
        round_trip(&rt, &good, Some(insecure.clone())).await;
        round_trip(&rt, &expired, Some(insecure)).await;
        handle.shutdown();
        handle.closed().await;
    })
    .await;
}

pub async fn mqtts_client_certificate_on_a_mutual_tls_listener<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let mutual = midge_server::TlsOptions {
            client_ca: Some(pki.path("ca.pem")),
            require_client_cert: true,
            ..server_tls(&pki, "server")
        };
        let (addrs, handle) = serve(&rt, vec![ListenerKind::Tls(mutual)]).await;
        let url = format!("mqtts://localhost:{}", addrs[0].port());
        let with_cert = trusting(&pki, "ca.pem")
            .with_client_cert(pki.path("client.pem"), pki.path("client.key"));
        round_trip(&rt, &url, Some(with_cert)).await;
        // Without a certificate, or with one from another CA, the broker
        // ends the handshake; under TLS 1.3 the client learns it when it
        // reads, as a lost connection or a TLS alert.
        for tls in [
            trusting(&pki, "ca.pem"),
            trusting(&pki, "ca.pem")
                .with_client_cert(pki.path("other-client.pem"), pki.path("other-client.key")),
        ] {
            let err = connect_error(&rt, &url, Some(tls)).await;
            assert!(
                matches!(
                    err,
                    ClientError::Tls(_) | ClientError::Io(_) | ClientError::ConnectionLost
                ),
                "{err:?}"
            );
        }
        handle.shutdown();
        handle.closed().await;
    })
    .await;
}

pub async fn ws_wrong_path_fails_with_the_http_status<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let (addrs, handle) = serve(
            &rt,
            vec![ListenerKind::Ws {
                path: "/mqtt".into(),
            }],
        )
        .await;
        let url = format!("ws://127.0.0.1:{}/elsewhere", addrs[0].port());
        match connect_error(&rt, &url, None).await {
            ClientError::WebSocket(reason) => assert!(reason.contains("404"), "{reason}"),
            other => panic!("{other:?}"),
        }
        handle.shutdown();
        handle.closed().await;
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
    mqtts_ws_and_wss_round_trips,
    mqtts_untrusted_and_expired_server_certificates_fail,
    mqtts_client_certificate_on_a_mutual_tls_listener,
    ws_wrong_path_fails_with_the_http_status,
);
