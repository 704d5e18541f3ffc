//! The real `midge sn pub` / `midge sn sub` against a scripted fake gateway:
//! a loopback UDP socket on a thread that checks each datagram's octets and
//! answers with hand-written ones (MQTT-SN 1.2, section 5), so the tests
//! need no gateway and no peer. Exit codes as docs/cli.md lists them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, ExitStatus};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use midge_testkit::Process;

/// How long any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

// MsgType octets (spec 5.3.1) and flag bits (5.3.4).
const CONNACK: u8 = 0x05;
const CONNECT: u8 = 0x04;
const REGISTER: u8 = 0x0A;
const REGACK: u8 = 0x0B;
const PUBLISH: u8 = 0x0C;
const PUBACK: u8 = 0x0D;
const SUBSCRIBE: u8 = 0x12;
const SUBACK: u8 = 0x13;
const DISCONNECT: u8 = 0x18;
const QOS_MINUS_ONE: u8 = 0x60;
const QOS_1: u8 = 0x20;
const SHORT_TOPIC: u8 = 0x02;

/// A fake gateway: one UDP socket on 127.0.0.1.
struct FakeGateway {
    socket: UdpSocket,
    client: Option<SocketAddr>,
}

impl FakeGateway {
    fn bind() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Self {
            socket,
            client: None,
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// The next datagram (one-octet Length form), checked for its length.
    fn recv(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (n, from) = self
            .socket
            .recv_from(&mut buf)
            .expect("no datagram in time");
        self.client = Some(from);
        let datagram = buf[..n].to_vec();
        assert_eq!(usize::from(datagram[0]), n, "Length field: {datagram:02x?}");
        datagram
    }

    fn expect(&mut self, msg_type: u8) -> Vec<u8> {
        let datagram = self.recv();
        assert_eq!(datagram[1], msg_type, "unexpected datagram {datagram:02x?}");
        datagram
    }

    fn send(&self, body: &[u8]) {
        let mut datagram = vec![u8::try_from(body.len() + 1).unwrap()];
        datagram.extend_from_slice(body);
        self.socket
            .send_to(&datagram, self.client.expect("client address"))
            .unwrap();
    }

    /// CONNECT → CONNACK with `code`; returns the CONNECT's client id.
    fn answer_connect(&mut self, code: u8) -> String {
        let connect = self.expect(CONNECT);
        // Length, MsgType, Flags, ProtocolId, Duration(2), ClientId.
        assert_eq!(connect[3], 0x01, "ProtocolId");
        self.send(&[CONNACK, code]);
        String::from_utf8(connect[6..].to_vec()).unwrap()
    }

    /// DISCONNECT → DISCONNECT.
    fn answer_disconnect(&mut self) {
        let disconnect = self.expect(DISCONNECT);
        assert_eq!(disconnect.len(), 2, "no sleep duration");
        self.send(&[DISCONNECT]);
    }
}

fn midge(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_midge"));
    cmd.args(args);
    cmd
}

/// Runs `cmd` while `gateway` plays its part on a thread.
fn run_against(
    cmd: &mut Command,
    gateway: impl FnOnce() + Send + 'static,
) -> (ExitStatus, Vec<String>, String) {
    let script: JoinHandle<()> = thread::spawn(gateway);
    let mut process = Process::spawn("midge sn", cmd).unwrap();
    let status = process.wait_timeout(WAIT).unwrap();
    let stdout = process.stdout().wait_closed(WAIT).unwrap();
    let output = process.output_so_far();
    script.join().expect("the fake gateway's script failed");
    (status, stdout, output)
}

#[test]
fn sn_pub_qos_minus_one_sends_a_publish_without_connecting() {
    let mut gw = FakeGateway::bind();
    let port = gw.port().to_string();
    let mut process = Process::spawn(
        "midge sn pub",
        &mut midge(&[
            "sn", "pub", "--short", "ab", "-q", "-1", "-m", "hello", "-p", &port,
        ]),
    )
    .unwrap();
    let publish = gw.expect(PUBLISH);
    // Flags: QoS -1, short topic name; TopicId "ab"; MsgId 0; Data.
    assert_eq!(publish[2], QOS_MINUS_ONE | SHORT_TOPIC);
    assert_eq!(&publish[3..5], b"ab");
    assert_eq!(&publish[5..7], &[0, 0]);
    assert_eq!(&publish[7..], b"hello");
    let status = process.wait_timeout(WAIT).unwrap();
    assert!(status.success(), "{}", process.output_so_far());
}

#[test]
fn sn_pub_qos1_on_a_name_registers_then_waits_for_puback() {
    let mut gw = FakeGateway::bind();
    let port = gw.port().to_string();
    let (status, _, output) = run_against(
        &mut midge(&[
            "sn",
            "pub",
            "-t",
            "sensors/1",
            "-m",
            "21.5",
            "-q",
            "1",
            "-p",
            &port,
            "-i",
            "cli-1",
        ]),
        move || {
            assert_eq!(gw.answer_connect(0x00), "cli-1");
            let register = gw.expect(REGISTER);
            // TopicId 0 from a client, MsgId, TopicName.
            assert_eq!(&register[2..4], &[0, 0]);
            assert_eq!(&register[6..], b"sensors/1");
            let msg_id = [register[4], register[5]];
            gw.send(&[REGACK, 0x00, 0x21, msg_id[0], msg_id[1], 0x00]);
            let publish = gw.expect(PUBLISH);
            assert_eq!(publish[2] & 0x60, QOS_1);
            assert_eq!(&publish[3..5], &[0x00, 0x21]);
            assert_eq!(&publish[7..], b"21.5");
            gw.send(&[PUBACK, 0x00, 0x21, publish[5], publish[6], 0x00]);
            gw.answer_disconnect();
        },
    );
    assert!(status.success(), "{output}");
}

#[test]
fn sn_sub_prints_topic_and_payload_and_stops_at_count() {
    let mut gw = FakeGateway::bind();
    let url = format!("udp://127.0.0.1:{}", gw.port());
    let (status, stdout, output) = run_against(
        &mut midge(&[
            "sn", "sub", "-t", "s/t", "-q", "1", "-v", "-C", "1", "-L", &url,
        ]),
        move || {
            gw.answer_connect(0x00);
            let subscribe = gw.expect(SUBSCRIBE);
            assert_eq!(subscribe[2] & 0x60, QOS_1);
            assert_eq!(&subscribe[5..], b"s/t");
            gw.send(&[SUBACK, QOS_1, 0x00, 0x33, subscribe[3], subscribe[4], 0x00]);
            let mut publish = vec![PUBLISH, 0x00, 0x00, 0x33, 0x00, 0x00];
            publish.extend_from_slice(b"payload-1");
            gw.send(&publish);
            gw.answer_disconnect();
        },
    );
    assert!(status.success(), "{output}");
    assert_eq!(stdout, vec!["s/t payload-1".to_owned()]);
}

#[test]
fn sn_pub_to_a_silent_gateway_ends_with_the_timeout_code() {
    let gw = FakeGateway::bind();
    let port = gw.port().to_string();
    let mut process = Process::spawn(
        "midge sn pub",
        &mut midge(&["sn", "pub", "-t", "a", "-m", "x", "-p", &port, "-W", "1"]),
    )
    .unwrap();
    let status = process.wait_timeout(WAIT).unwrap();
    assert_eq!(status.code(), Some(27), "{}", process.output_so_far());
    drop(gw);
}

#[test]
fn sn_connect_refused_exits_4() {
    let mut gw = FakeGateway::bind();
    let port = gw.port().to_string();
    let (status, _, output) = run_against(
        &mut midge(&["sn", "pub", "-t", "a", "-m", "x", "-p", &port]),
        move || {
            gw.answer_connect(0x03);
        },
    );
    assert_eq!(status.code(), Some(4), "{output}");
}

#[test]
fn sn_bad_command_lines_exit_2() {
    for args in [
        &["sn", "pub", "-t", "name", "-q", "-1", "-m", "x"][..],
        &["sn", "pub", "--short", "abc", "-m", "x"],
        &["sn", "pub", "-T", "0", "-m", "x"],
        &["sn", "sub", "-t", "a", "-q", "-1"],
        &[
            "sn",
            "pub",
            "-t",
            "a",
            "-m",
            "x",
            "-L",
            "mqtt://127.0.0.1:1",
        ],
        &[
            "sn",
            "pub",
            "-t",
            "a",
            "-m",
            "x",
            "-i",
            "an-id-much-longer-than-23-octets",
        ],
    ] {
        let mut process = Process::spawn("midge sn", &mut midge(args)).unwrap();
        let status = process.wait_timeout(WAIT).unwrap();
        assert_eq!(
            status.code(),
            Some(2),
            "{args:?}: {}",
            process.output_so_far()
        );
    }
}
