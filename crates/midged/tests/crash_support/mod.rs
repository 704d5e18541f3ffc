//! Shared by the crash and persistence tests: a raw MQTT client on a
//! blocking socket, and durable `midged` launchers.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use midge_codec::{
    Connect, Decoder, Filter, MqttString, Packet, PacketId, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, QosPid, Subscribe, SubscribeFilter, Topic,
};
use midge_testkit::Midged;

/// The longest any single wait may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// `midged` durable in `data`, with `extra` flags.
pub fn midged_with(data: &Path, extra: &[&str]) -> Midged {
    let mut args = vec![
        "--persistence",
        "durable",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Midged::start(Path::new(env!("CARGO_BIN_EXE_midged")), &args).unwrap()
}

/// `midged` durable in `data` with the default batched commits.
pub fn midged(data: &Path) -> Midged {
    midged_with(data, &["--fsync", "batch"])
}

/// A fresh directory for this test process (removed first if left over).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("midged-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A raw MQTT client on a blocking socket.
pub struct Raw {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    next_pid: u16,
}

impl Raw {
    pub fn connect(addr: SocketAddr, id: &str, clean: bool) -> std::io::Result<(Self, bool)> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut raw = Self {
            stream,
            decoder: Decoder::new(),
            buf: BytesMut::new(),
            next_pid: 0,
        };
        let mut connect = Connect::new(MqttString::new(id).unwrap(), 60);
        connect.clean_session = clean;
        raw.send(&Packet::Connect(connect))?;
        match raw.next(WAIT)? {
            Some(Packet::ConnAck(ack)) => Ok((raw, ack.session_present)),
            other => Err(std::io::Error::other(format!(
                "expected CONNACK: {other:?}"
            ))),
        }
    }

    pub fn send(&mut self, packet: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        packet.encode(&mut out).unwrap();
        self.stream.write_all(&out)
    }

    /// The next packet, `None` after `wait` of silence; an error when the
    /// socket closes.
    pub fn next(&mut self, wait: Duration) -> std::io::Result<Option<Packet>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(p) = self.decoder.decode(&mut self.buf).unwrap() {
                return Ok(Some(p));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn pid(&mut self) -> PacketId {
        self.next_pid = self.next_pid % 60_000 + 1;
        PacketId::new(self.next_pid).unwrap()
    }

    pub fn expect(&mut self) -> std::io::Result<Packet> {
        self.next(WAIT)?
            .ok_or_else(|| std::io::Error::other("no answer"))
    }

    /// Publishes and completes the handshake; `Ok` once acknowledged.
    pub fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        payload: &[u8],
        retain: bool,
    ) -> std::io::Result<()> {
        let id = self.pid();
        let qos_pid = match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            QoS::AtLeastOnce => QosPid::AtLeastOnce(id),
            QoS::ExactlyOnce => QosPid::ExactlyOnce(id),
        };
        let mut p = Publish::new(Topic::new(topic).unwrap(), qos_pid, payload.to_vec());
        p.retain = retain;
        self.send(&Packet::Publish(p))?;
        match qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => match self.expect()? {
                Packet::PubAck(a) if a.packet_id == id => Ok(()),
                other => Err(std::io::Error::other(format!("expected PUBACK: {other:?}"))),
            },
            QoS::ExactlyOnce => {
                match self.expect()? {
                    Packet::PubRec(a) if a.packet_id == id => {}
                    other => {
                        return Err(std::io::Error::other(format!("expected PUBREC: {other:?}")))
                    }
                }
                self.send(&Packet::PubRel(PubRel::new(id)))?;
                match self.expect()? {
                    Packet::PubComp(a) if a.packet_id == id => Ok(()),
                    other => Err(std::io::Error::other(format!(
                        "expected PUBCOMP: {other:?}"
                    ))),
                }
            }
        }
    }

    pub fn subscribe(&mut self, filter: &str, qos: QoS) {
        let id = self.pid();
        let sub = Subscribe::new(
            id,
            vec![SubscribeFilter::new(Filter::new(filter).unwrap(), qos)],
        );
        self.send(&Packet::Subscribe(sub)).unwrap();
        assert!(matches!(self.expect().unwrap(), Packet::SubAck(_)));
    }

    /// Every PUBLISH until `quiet` passes with none, acknowledged; bounded
    /// by `WAIT` in all.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Publish> {
        let end = Instant::now() + WAIT * 3;
        let mut got = Vec::new();
        while Instant::now() < end {
            match self.next(quiet).unwrap() {
                None => break,
                Some(Packet::Publish(p)) => {
                    match p.qos_pid {
                        QosPid::AtMostOnce => {}
                        QosPid::AtLeastOnce(id) => {
                            self.send(&Packet::PubAck(PubAck::new(id))).unwrap();
                        }
                        QosPid::ExactlyOnce(id) => {
                            self.send(&Packet::PubRec(PubRec::new(id))).unwrap();
                        }
                    }
                    got.push(p);
                }
                Some(Packet::PubRel(r)) => {
                    self.send(&Packet::PubComp(PubComp::new(r.packet_id)))
                        .unwrap();
                }
                Some(_) => {}
            }
        }
        got
    }
}
