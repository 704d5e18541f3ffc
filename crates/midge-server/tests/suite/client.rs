//! A raw MQTT test client over a real socket: packets encoded and decoded
//! with `midge-codec`, nothing else between the test and the wire.

use std::net::SocketAddr;

use bytes::BytesMut;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use midge_codec::{
    ConnAck, Connect, Decoder, Filter, LastWill, MqttString, Packet, PacketId, PubAck, PubComp,
    PubRec, PubRel, Publish, QoS, QosPid, SubAck, Subscribe, SubscribeFilter, Topic,
};
use midge_runtime::{Duration, Runtime};

/// What a bounded wait for a packet found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Packet(Packet),
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing within the wait.
    Silent,
}

pub struct TestClient<R: Runtime> {
    rt: R,
    stream: R::TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    next_pid: u16,
}

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

impl<R: Runtime> TestClient<R> {
    pub async fn open(rt: &R, addr: SocketAddr) -> Self {
        let stream = rt.connect_tcp(addr).await.expect("connect");
        Self {
            rt: rt.clone(),
            stream,
            decoder: Decoder::new(),
            buf: BytesMut::new(),
            next_pid: 0,
        }
    }

    /// Opens a socket and completes an MQTT CONNECT; returns the CONNACK.
    pub async fn connect_with(rt: &R, addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let mut client = Self::open(rt, addr).await;
        client.send(&Packet::Connect(connect)).await;
        match client.next(Duration::from_secs(10)).await {
            Next::Packet(Packet::ConnAck(ack)) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// A clean-session client with keep alive 60 and no will; CONNACK 0x00.
    pub async fn connect(rt: &R, addr: SocketAddr, id: &str) -> Self {
        let (client, ack) = Self::connect_with(rt, addr, connect_packet(id, true, 60)).await;
        assert_eq!(ack.code, midge_codec::ConnectReturnCode::Accepted);
        client
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        packet.encode(&mut out).expect("encode");
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Writes without failing the test when the server already closed.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok()
    }

    /// The next packet, EOF, or nothing within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Next {
        let deadline = self.rt.now().saturating_add(wait);
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(packet)) => return Next::Packet(packet),
                Ok(None) => {}
                Err(e) => panic!("server sent undecodable bytes: {e:?}"),
            }
            let mut chunk = [0u8; 4096];
            let rt = self.rt.clone();
            let stream = &mut self.stream;
            let read = future::or(async { Some(stream.read(&mut chunk).await) }, async move {
                rt.sleep_until(deadline).await;
                None
            })
            .await;
            match read {
                None => return Next::Silent,
                Some(Ok(0)) | Some(Err(_)) => return Next::Closed,
                Some(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next packet; fails the test on EOF or silence.
    pub async fn packet(&mut self) -> Packet {
        match self.next(Duration::from_secs(10)).await {
            Next::Packet(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// Waits for the server to close the socket, ignoring packets; true
    /// when it did within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = self.rt.now().saturating_add(wait);
        loop {
            let left = deadline.saturating_duration_since(self.rt.now());
            match self.next(left).await {
                Next::Closed => return true,
                Next::Silent => return false,
                Next::Packet(_) => {}
            }
        }
    }

    fn pid(&mut self) -> PacketId {
        self.next_pid = self.next_pid % 60_000 + 1;
        pid(self.next_pid)
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        let id = self.pid();
        let sub = Subscribe::new(
            id,
            vec![SubscribeFilter {
                filter: Filter::new(filter).unwrap(),
                qos,
            }],
        );
        self.send(&Packet::Subscribe(sub)).await;
        match self.packet().await {
            Packet::SubAck(SubAck {
                packet_id,
                return_codes,
            }) => {
                assert_eq!(packet_id, id);
                assert_eq!(
                    return_codes,
                    vec![midge_codec::SubscribeReturnCode::Success(qos)]
                );
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and completes the QoS handshake.
    pub async fn publish(&mut self, topic: &str, qos: QoS, payload: &[u8], retain: bool) {
        let qos_pid = match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            QoS::AtLeastOnce => QosPid::AtLeastOnce(self.pid()),
            QoS::ExactlyOnce => QosPid::ExactlyOnce(self.pid()),
        };
        let mut publish = Publish::new(Topic::new(topic).unwrap(), qos_pid, payload.to_vec());
        publish.retain = retain;
        self.send(&Packet::Publish(publish)).await;
        match qos_pid {
            QosPid::AtMostOnce => {}
            QosPid::AtLeastOnce(id) => {
                assert_eq!(self.packet().await, Packet::PubAck(PubAck::new(id)));
            }
            QosPid::ExactlyOnce(id) => {
                assert_eq!(self.packet().await, Packet::PubRec(PubRec::new(id)));
                self.send(&Packet::PubRel(PubRel::new(id))).await;
                assert_eq!(self.packet().await, Packet::PubComp(PubComp::new(id)));
            }
        }
    }

    /// The next PUBLISH, acknowledged as its QoS asks; fails on anything
    /// else.
    pub async fn received(&mut self) -> Publish {
        match self.packet().await {
            Packet::Publish(p) => {
                self.acknowledge(&p).await;
                p
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    pub async fn acknowledge(&mut self, p: &Publish) {
        match p.qos_pid {
            QosPid::AtMostOnce => {}
            QosPid::AtLeastOnce(id) => self.send(&Packet::PubAck(PubAck::new(id))).await,
            QosPid::ExactlyOnce(id) => {
                self.send(&Packet::PubRec(PubRec::new(id))).await;
                assert_eq!(self.packet().await, Packet::PubRel(PubRel::new(id)));
                self.send(&Packet::PubComp(PubComp::new(id))).await;
            }
        }
    }

    /// A PINGREQ answered by a PINGRESP: the server serves this client.
    pub async fn ping(&mut self) {
        self.send(&Packet::PingReq).await;
        assert_eq!(self.packet().await, Packet::PingResp);
    }

    pub async fn disconnect(mut self) {
        self.send(&Packet::Disconnect).await;
        assert!(self.closed_within(Duration::from_secs(10)).await);
    }
}

pub fn connect_packet(id: &str, clean_session: bool, keep_alive: u16) -> Connect {
    let mut connect = Connect::new(MqttString::new(id).unwrap(), keep_alive);
    connect.clean_session = clean_session;
    connect
}

pub fn with_will(mut connect: Connect, topic: &str, message: &[u8]) -> Connect {
    connect.will = Some(LastWill {
        topic: Topic::new(topic).unwrap(),
        message: message.to_vec().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    });
    connect
}
