//! `midge_smol::Server` is the shared server on smol: a smoke test of the
//! alias and the re-exports over loopback (the full suite lives in
//! `midge-server/tests`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use midge_smol::{Runtime, Server, ServerOptions, SmolRuntime};
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// CONNECT, MQTT 3.1.1, clean session, keep alive 60, client id "a".
const CONNECT: [u8; 15] = [
    0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, b'a',
];

// covers: MQTT-3.2.0-1
#[test]
fn mqtt_3_2_0_1_smol_server_answers_connect_and_shuts_down() {
    let rt = SmolRuntime::current();
    let test = async {
        let options = ServerOptions {
            listeners: vec!["127.0.0.1:0".parse().unwrap()],
            shards: 2,
            ..ServerOptions::default()
        };
        let server = Server::bind(rt.clone(), options).await.unwrap();
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let (done_tx, done_rx) = smol::channel::bounded(1);
        rt.spawn(async move {
            let _ = done_tx.send(server.run().await).await;
        });

        let mut socket = rt.connect_tcp(addr).await.unwrap();
        socket.write_all(&CONNECT).await.unwrap();
        let mut connack = [0u8; 4];
        socket.read_exact(&mut connack).await.unwrap();
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
        assert_eq!(handle.stats().connections_open, 1);
        handle.shutdown();
        done_rx.recv().await.unwrap().unwrap();
        let mut rest = Vec::new();
        // The server closed the socket: EOF (or a reset).
        let read = socket.read_to_end(&mut rest).await;
        assert!(read.is_err() || rest.is_empty(), "{rest:?}");
        assert_eq!(handle.stats().connections_open, 0);
    };
    let timeout = async {
        smol::Timer::after(std::time::Duration::from_secs(20)).await;
        panic!("test timed out");
    };
    smol::block_on(smol::future::or(test, timeout));
}
