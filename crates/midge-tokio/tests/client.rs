//! `midge_tokio::Client` is the client on tokio: it connects on the current
//! runtime, publishes and disconnects against a loopback peer that speaks
//! raw MQTT bytes. (The full client suite lives in `midge-client`.)
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use midge_tokio::{Client, ConnectOptions, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Reads one packet with a one-byte remaining length; returns it whole.
async fn read_packet(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await.unwrap();
    assert!(header[1] < 0x80, "short packets only");
    let mut body = vec![0u8; usize::from(header[1])];
    stream.read_exact(&mut body).await.unwrap();
    let mut packet = header.to_vec();
    packet.extend(body);
    packet
}

#[tokio::test]
async fn tokio_client_connects_publishes_and_disconnects() {
    let test = async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let connect = read_packet(&mut stream).await;
            assert_eq!(connect[0], 0x10, "CONNECT first");
            stream.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap(); // CONNACK accepted
            let publish = read_packet(&mut stream).await;
            assert_eq!(
                publish,
                [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i']
            );
            assert_eq!(read_packet(&mut stream).await, [0xE0, 0x00]); // DISCONNECT
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "nothing after DISCONNECT");
        });
        let options = ConnectOptions::new(&addr.to_string(), "tokio-smoke").unwrap();
        let (client, _messages) = Client::connect(options).await.unwrap();
        assert!(client.is_connected());
        client
            .publish("a/b", "hi", QoS::AtMostOnce, false)
            .unwrap()
            .await
            .unwrap();
        client.disconnect().await.unwrap();
        peer.await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .unwrap();
}
