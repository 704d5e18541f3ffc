//! `midge_smol::Client` is the client on smol: it connects on the
//! process-wide executor, publishes and disconnects against a loopback peer
//! that speaks raw MQTT bytes. (The full client suite lives in
//! `midge-client`.)
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::time::Duration;

use midge_smol::{Client, ConnectOptions, QoS};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

/// Reads one packet with a one-byte remaining length; returns it whole.
async fn read_packet(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await.unwrap();
    assert!(header[1] < 0x80, "short packets only");
    let mut body = vec![0u8; usize::from(header[1])];
    stream.read_exact(&mut body).await.unwrap();
    let mut packet = header.to_vec();
    packet.extend(body);
    packet
}

#[test]
fn smol_client_connects_publishes_and_disconnects() {
    smol::block_on(async {
        let test = async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = smol::spawn(async move {
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
            let options = ConnectOptions::new(&addr.to_string(), "smol-smoke").unwrap();
            let (client, _messages) = Client::connect(options).await.unwrap();
            assert!(client.is_connected());
            client
                .publish("a/b", "hi", QoS::AtMostOnce, false)
                .unwrap()
                .await
                .unwrap();
            client.disconnect().await.unwrap();
            peer.await;
        };
        let limit = async {
            smol::Timer::after(Duration::from_secs(20)).await;
            panic!("the test did not finish within 20 s");
        };
        smol::future::or(test, limit).await;
    });
}
