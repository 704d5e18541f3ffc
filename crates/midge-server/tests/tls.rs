//! TLS listeners over loopback: handshakes, mutual TLS, the client
//! certificate's CN as user name, certificate reload, and bad input. Each
//! test is written once over any runtime and run on tokio and smol.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub
)]

mod tls_support;

use std::sync::Arc;

use futures_lite::AsyncWriteExt;
use futures_rustls::rustls::{self, ClientConfig};
use futures_rustls::TlsConnector;
use midge_runtime::Runtime;
use midge_server::{ListenerKind, TlsOptions};
use tls_support::mqtt::{self, bounded, Running};
use tls_support::{localhost, Pki};

fn tls_kind(pki: &Pki) -> TlsOptions {
    TlsOptions::new(pki.path("server.pem"), pki.path("server.key"))
}

fn mutual(pki: &Pki, require: bool, cn: bool) -> TlsOptions {
    TlsOptions {
        client_ca: Some(pki.path("ca.pem")),
        require_client_cert: require,
        cn_as_username: cn,
        ..tls_kind(pki)
    }
}

/// TLS handshake, CONNECT; the CONNACK code, or the handshake's error.
async fn tls_connect<R: Runtime>(
    rt: &R,
    server: &Running,
    config: Arc<ClientConfig>,
    id: &str,
    username: Option<&str>,
) -> Result<u8, String> {
    let tcp = rt.connect_tcp(server.addr).await.unwrap();
    let mut tls = TlsConnector::from(config)
        .connect(localhost(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    // With TLS 1.3 a refused client certificate shows on the first read.
    mqtt::handshake_mqtt(&mut tls, id, username)
        .await
        .map_err(|e| e.to_string())
}

pub async fn tls_publish_and_subscribe<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let server = Running::start(&rt, ListenerKind::Tls(tls_kind(&pki))).await;
        let config = pki.client_config("ca.pem", None);
        let tcp = rt.connect_tcp(server.addr).await.unwrap();
        let mut sub = TlsConnector::from(Arc::clone(&config))
            .connect(localhost(), tcp)
            .await
            .unwrap();
        assert_eq!(
            mqtt::handshake_mqtt(&mut sub, "sub", None).await.unwrap(),
            0
        );
        sub.write_all(&mqtt::subscribe("t/#")).await.unwrap();
        sub.flush().await.unwrap();
        assert_eq!(
            mqtt::read_n(&mut sub, 5).await.unwrap(),
            mqtt::SUBACK_1_QOS0
        );

        let tcp = rt.connect_tcp(server.addr).await.unwrap();
        let mut publisher = TlsConnector::from(config)
            .connect(localhost(), tcp)
            .await
            .unwrap();
        assert_eq!(
            mqtt::handshake_mqtt(&mut publisher, "pub", None)
                .await
                .unwrap(),
            0
        );
        let message = mqtt::publish("t/1", b"over tls");
        publisher.write_all(&message).await.unwrap();
        publisher.flush().await.unwrap();
        assert_eq!(
            mqtt::read_n(&mut sub, message.len()).await.unwrap(),
            message
        );
        drop((sub, publisher));
        server.stop().await;
    })
    .await;
}

pub async fn tls_client_trusting_another_ca_is_refused<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let server = Running::start(&rt, ListenerKind::Tls(tls_kind(&pki))).await;
        let err = tls_connect(
            &rt,
            &server,
            pki.client_config("other-ca.pem", None),
            "c",
            None,
        )
        .await
        .unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
        // The broker still serves.
        let ok = tls_connect(&rt, &server, pki.client_config("ca.pem", None), "c", None).await;
        assert_eq!(ok, Ok(0));
        server.stop().await;
    })
    .await;
}

pub async fn tls_expired_server_certificate_is_refused_by_the_client<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let kind = TlsOptions::new(
            pki.path("expired-server.pem"),
            pki.path("expired-server.key"),
        );
        let server = Running::start(&rt, ListenerKind::Tls(kind)).await;
        let err = tls_connect(&rt, &server, pki.client_config("ca.pem", None), "c", None)
            .await
            .unwrap_err();
        assert!(err.contains("certificate expired"), "{err}");
        server.stop().await;
    })
    .await;
}

pub async fn tls_required_client_certificate<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let server = Running::start(&rt, ListenerKind::Tls(mutual(&pki, true, false))).await;
        // No certificate, a certificate from another CA, an expired one:
        // all refused.
        for client in [None, Some("other-client"), Some("expired-client")] {
            let result =
                tls_connect(&rt, &server, pki.client_config("ca.pem", client), "c", None).await;
            assert!(result.is_err(), "{client:?} got {result:?}");
        }
        let ok = tls_connect(
            &rt,
            &server,
            pki.client_config("ca.pem", Some("client")),
            "c",
            None,
        )
        .await;
        assert_eq!(ok, Ok(0));
        server.stop().await;
    })
    .await;
}

pub async fn tls_optional_client_certificate<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let server = Running::start(&rt, ListenerKind::Tls(mutual(&pki, false, false))).await;
        let without = tls_connect(&rt, &server, pki.client_config("ca.pem", None), "a", None).await;
        assert_eq!(without, Ok(0));
        let with = tls_connect(
            &rt,
            &server,
            pki.client_config("ca.pem", Some("client")),
            "b",
            None,
        )
        .await;
        assert_eq!(with, Ok(0));
        // A certificate that does not verify is refused even when optional.
        let bad = tls_connect(
            &rt,
            &server,
            pki.client_config("ca.pem", Some("other-client")),
            "c",
            None,
        )
        .await;
        assert!(bad.is_err(), "{bad:?}");
        server.stop().await;
    })
    .await;
}

pub async fn tls_certificate_cn_is_the_user_name<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let kind = ListenerKind::Tls(mutual(&pki, false, true));
        let server = Running::start_with(&rt, kind, || mqtt::OnlyUser("device-7")).await;
        // The certificate says device-7, whatever CONNECT says.
        let with_cert = tls_connect(
            &rt,
            &server,
            pki.client_config("ca.pem", Some("client")),
            "a",
            Some("mallory"),
        )
        .await;
        assert_eq!(with_cert, Ok(0));
        // Without a certificate the CONNECT user name counts: refused.
        let without = tls_connect(
            &rt,
            &server,
            pki.client_config("ca.pem", None),
            "b",
            Some("mallory"),
        )
        .await;
        assert_eq!(without, Ok(0x05));
        server.stop().await;
    })
    .await;
}

pub async fn tls_reload_keeps_connections_and_serves_the_new_certificate<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let server = Running::start(&rt, ListenerKind::Tls(tls_kind(&pki))).await;
        let tcp = rt.connect_tcp(server.addr).await.unwrap();
        let mut early = TlsConnector::from(pki.client_config("ca.pem", None))
            .connect(localhost(), tcp)
            .await
            .unwrap();
        assert_eq!(
            mqtt::handshake_mqtt(&mut early, "early", None)
                .await
                .unwrap(),
            0
        );

        // Replace the files with a certificate from the other CA; a broken
        // file first: the reload fails and changes nothing.
        pki.write("server.pem", "not a certificate");
        assert!(server.handle.reload_tls().is_err());
        let still = tls_connect(&rt, &server, pki.client_config("ca.pem", None), "x", None).await;
        assert_eq!(still, Ok(0));
        let other = std::fs::read_to_string(pki.path("other-server.pem")).unwrap();
        pki.write("server.pem", &other);
        let key = std::fs::read_to_string(pki.path("other-server.key")).unwrap();
        pki.write("server.key", &key);
        assert_eq!(server.handle.reload_tls(), Ok(1));

        let old = tls_connect(&rt, &server, pki.client_config("ca.pem", None), "y", None).await;
        assert!(old.unwrap_err().contains("UnknownIssuer"));
        let new = tls_connect(
            &rt,
            &server,
            pki.client_config("other-ca.pem", None),
            "z",
            None,
        )
        .await;
        assert_eq!(new, Ok(0));
        // The connection made before the reload still works.
        early.write_all(&mqtt::subscribe("a")).await.unwrap();
        early.flush().await.unwrap();
        assert_eq!(
            mqtt::read_n(&mut early, 5).await.unwrap(),
            mqtt::SUBACK_1_QOS0
        );
        drop(early);
        server.stop().await;
    })
    .await;
}

pub async fn tls_garbage_handshake_is_closed_and_others_are_served<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let server = Running::start(&rt, ListenerKind::Tls(tls_kind(&pki))).await;
        let mut garbage = rt.connect_tcp(server.addr).await.unwrap();
        // A plain MQTT CONNECT is not a TLS ClientHello.
        garbage
            .write_all(&mqtt::connect("plain", None))
            .await
            .unwrap();
        garbage.write_all(&[0xAB; 300]).await.unwrap();
        assert!(mqtt::closes(&rt, &mut garbage).await);
        let ok = tls_connect(&rt, &server, pki.client_config("ca.pem", None), "c", None).await;
        assert_eq!(ok, Ok(0));
        server.stop().await;
    })
    .await;
}

pub async fn tls_1_2_and_1_3_are_both_served<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let pki = Pki::new();
        let server = Running::start(&rt, ListenerKind::Tls(tls_kind(&pki))).await;
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let config = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(Arc::clone(&trusted_roots(&pki)))
            .with_no_client_auth();
            let tcp = rt.connect_tcp(server.addr).await.unwrap();
            let mut tls = TlsConnector::from(Arc::new(config))
                .connect(localhost(), tcp)
                .await
                .unwrap();
            assert_eq!(
                tls.get_ref().1.protocol_version(),
                Some(version.version),
                "{version:?}"
            );
            assert_eq!(mqtt::handshake_mqtt(&mut tls, "v", None).await.unwrap(), 0);
        }
        server.stop().await;
    })
    .await;
}

fn trusted_roots(pki: &Pki) -> Arc<rustls::RootCertStore> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(roots)
}

pub async fn tls_bad_files_fail_bind<R: Runtime>(rt: R) {
    let pki = Pki::new();
    let missing = TlsOptions::new(pki.path("nope.pem"), pki.path("server.key"));
    let wrong_key = TlsOptions::new(pki.path("server.pem"), pki.path("client.key"));
    let no_ca = TlsOptions {
        require_client_cert: true,
        ..tls_kind(&pki)
    };
    for kind in [missing, wrong_key, no_ca] {
        let options = midge_server::ServerOptions {
            listeners: Vec::new(),
            transports: vec![midge_server::Listener {
                addr: "127.0.0.1:0".parse().unwrap(),
                kind: ListenerKind::Tls(kind.clone()),
            }],
            ..midge_server::ServerOptions::default()
        };
        let err = midge_server::Server::bind(rt.clone(), options)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{kind:?}: {err}"
        );
    }
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
    tls_publish_and_subscribe,
    tls_client_trusting_another_ca_is_refused,
    tls_expired_server_certificate_is_refused_by_the_client,
    tls_required_client_certificate,
    tls_optional_client_certificate,
    tls_certificate_cn_is_the_user_name,
    tls_reload_keeps_connections_and_serves_the_new_certificate,
    tls_garbage_handshake_is_closed_and_others_are_served,
    tls_bad_files_fail_bind,
    tls_1_2_and_1_3_are_both_served,
);
