//! `[metrics]` and `[sys]` end to end: the real `midged` with an ACL that
//! lets only `admin` read `$SYS`, known traffic over loopback, then
//! `/metrics` over HTTP and `$SYS` over MQTT, each count checked exactly.
//!
//! Every read has a timeout; the broker is killed when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use midge_auth::{PasswordFile, PasswordHash};
use midge_testkit::{Midged, ScratchDir};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Anonymous clients may use `data/#`; only `admin` may read `$SYS`.
const ACL: &str = "\
topic readwrite data/#
user admin
topic read $SYS/#
";

fn midged() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_midged"))
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s);
}

/// A packet: first byte, remaining length, body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

struct Client {
    stream: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr, id: &str, login: Option<(&str, &str)>) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut client = Self { stream };
        let mut body = Vec::new();
        string(&mut body, b"MQTT");
        let flags = if login.is_some() { 0xc2 } else { 0x02 };
        body.extend_from_slice(&[0x04, flags, 0x00, 0x3c]);
        string(&mut body, id.as_bytes());
        if let Some((user, password)) = login {
            string(&mut body, user.as_bytes());
            string(&mut body, password.as_bytes());
        }
        client.stream.write_all(&frame(0x10, &body))?;
        let (first, body) = client.read()?;
        if first != 0x20 || body != [0, 0] {
            bail!("{id}: expected CONNACK 0, got {first:#04x} {body:?}");
        }
        Ok(client)
    }

    fn read(&mut self) -> Result<(u8, Vec<u8>)> {
        let mut first = [0u8; 1];
        self.stream.read_exact(&mut first).context("reading")?;
        let mut len = 0usize;
        for shift in 0..4 {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b)?;
            len |= usize::from(b[0] & 0x7f) << (7 * shift);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        Ok((first[0], body))
    }

    /// SUBSCRIBE one filter at QoS 0; the SUBACK return code.
    fn subscribe(&mut self, pid: u16, filter: &str) -> Result<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        string(&mut body, filter.as_bytes());
        body.push(0x00);
        self.stream.write_all(&frame(0x82, &body))?;
        // Retained messages of an earlier filter may come first.
        for _ in 0..100 {
            let (first, body) = self.read()?;
            if first & 0xf0 == 0x30 {
                continue;
            }
            if first != 0x90 || body.len() != 3 {
                bail!("expected SUBACK, got {first:#04x} {body:?}");
            }
            return Ok(body[2]);
        }
        bail!("no SUBACK")
    }

    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<()> {
        let mut body = Vec::new();
        string(&mut body, topic.as_bytes());
        body.extend_from_slice(payload);
        self.stream.write_all(&frame(0x30, &body))?;
        Ok(())
    }

    /// The next PUBLISH (QoS 0): topic, payload, retain flag.
    fn message(&mut self) -> Result<(String, String, bool)> {
        let (first, body) = self.read()?;
        if first & 0xf0 != 0x30 || first & 0x06 != 0 {
            bail!("expected a QoS 0 PUBLISH, got {first:#04x}");
        }
        let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let topic = String::from_utf8(body[2..2 + len].to_vec())?;
        let payload = String::from_utf8(body[2 + len..].to_vec())?;
        Ok((topic, payload, first & 0x01 != 0))
    }
}

/// `GET /metrics`: sample (with labels) to value.
fn scrape(addr: SocketAddr) -> Result<BTreeMap<String, u64>> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: midged\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("no HTTP head in {text:?}");
    };
    if !head.starts_with("HTTP/1.1 200 ") {
        bail!("unexpected answer {head:?}");
    }
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').context("sample line")?;
            Ok((name.to_string(), value.parse()?))
        })
        .collect()
}

#[test]
fn metrics_and_sys_report_known_traffic_and_sys_needs_an_acl_read_rule() -> Result<()> {
    let dir = ScratchDir::new("metrics")?;
    let mut passwords = PasswordFile::new();
    passwords.set(
        "admin",
        PasswordHash::pbkdf2(b"secret", b"salt-admin", 50).unwrap(),
    )?;
    std::fs::write(dir.path().join("passwd"), passwords.to_string())?;
    std::fs::write(dir.path().join("acl"), ACL)?;
    let config = dir.path().join("midged.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\npassword_file = {:?}\nacl_file = {:?}\nallow_anonymous = true\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n[sys]\ninterval = \"1s\"\n",
            dir.path().join("passwd").display().to_string(),
            dir.path().join("acl").display().to_string(),
        ),
    )?;
    let broker = Midged::start(midged(), &["-c", config.to_str().unwrap()])?;
    let line = broker
        .process()
        .stderr()
        .wait_for(TIMEOUT, |l| l.contains("metrics at http://"))?;
    let metrics: SocketAddr = line
        .split("metrics at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .context("metrics address")?
        .parse()?;

    // Known traffic: 4 messages of 5 bytes to one subscriber.
    let mut anon = Client::connect(broker.addr(), "anon", None)?;
    assert_eq!(anon.subscribe(1, "data/#")?, 0x00);
    assert_eq!(anon.subscribe(2, "$SYS/#")?, 0x80, "no read rule for $SYS");
    for _ in 0..4 {
        anon.publish("data/x", b"hello")?;
    }
    for _ in 0..4 {
        let (topic, payload, _) = anon.message()?;
        assert_eq!((topic.as_str(), payload.as_str()), ("data/x", "hello"));
    }

    let mut admin = Client::connect(broker.addr(), "admin-1", Some(("admin", "secret")))?;
    assert_eq!(admin.subscribe(1, "$SYS/broker/messages/received")?, 0x00);
    assert_eq!(admin.subscribe(2, "$SYS/broker/clients/connected")?, 0x00);
    // Ticks every second; wait for a live one that has seen all four.
    let mut received = None;
    let mut connected = None;
    for _ in 0..100 {
        let (topic, payload, retain) = admin.message()?;
        if retain {
            continue;
        }
        let value: u64 = payload.parse()?;
        match topic.as_str() {
            "$SYS/broker/messages/received" => {
                assert!(value <= 4, "received {value}");
                received = Some(value);
            }
            "$SYS/broker/clients/connected" => connected = Some(value),
            other => bail!("not subscribed to {other}"),
        }
        if received == Some(4) && connected == Some(2) {
            break;
        }
    }
    assert_eq!((received, connected), (Some(4), Some(2)));

    let m = scrape(metrics)?;
    let get = |name: &str| {
        m.get(name)
            .copied()
            .with_context(|| format!("{name} missing"))
    };
    assert_eq!(get("midge_messages_received_total")?, 4);
    assert_eq!(get("midge_clients_connected")?, 2);
    assert_eq!(get("midge_subscriptions")?, 3);
    assert_eq!(
        get("midge_subscriptions_refused_total{reason=\"not_authorized\"}")?,
        1
    );
    assert_eq!(
        get("midge_messages_dropped_total{reason=\"acl_denied\"}")?,
        0
    );
    // A PUBLISH the ACL refuses is dropped and counted by reason.
    anon.publish("elsewhere", b"x")?;
    let mut denied = 0;
    for _ in 0..200 {
        denied = scrape(metrics)?["midge_messages_dropped_total{reason=\"acl_denied\"}"];
        if denied == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(denied, 1);
    Ok(())
}
