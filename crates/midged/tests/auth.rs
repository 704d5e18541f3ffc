//! `[auth]` end to end: the real `midged` with a password file and an ACL
//! file, driven over loopback with raw MQTT bytes and with Mosquitto's
//! clients (and a password file written by `mosquitto_passwd`).
//!
//! Every read has a timeout; every process is killed when a test ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use midge_auth::{PasswordFile, PasswordHash};
use midge_testkit::{
    find_peer, free_port, wait_for_port, Midged, MosquittoClients, Process, ScratchDir,
};

const TIMEOUT: Duration = Duration::from_secs(20);

const ACL: &str = "\
user alice
topic readwrite home/#
topic deny home/secret
topic read alarms/#
user bob
topic read home/#
topic write alarms/+
pattern readwrite clients/%c/#
";

fn midged() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_midged"))
}

/// A password file with alice/wonderland and bob/builder (few iterations:
/// the test binary is unoptimised).
fn password_file() -> String {
    let mut file = PasswordFile::new();
    file.set(
        "alice",
        PasswordHash::pbkdf2(b"wonderland", b"salt-a", 50).unwrap(),
    )
    .unwrap();
    file.set(
        "bob",
        PasswordHash::pbkdf2(b"builder", b"salt-b", 50).unwrap(),
    )
    .unwrap();
    file.to_string()
}

struct Setup {
    dir: ScratchDir,
    broker: Midged,
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn write_config(dir: &ScratchDir, passwd: &str, acl: &str, extra: &str) -> Result<PathBuf> {
    let pw = dir.path().join("passwd");
    let acl_path = dir.path().join("acl");
    std::fs::write(&pw, passwd)?;
    std::fs::write(&acl_path, acl)?;
    let config = dir.path().join("midged.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\npassword_file = {:?}\nacl_file = {:?}\n{extra}",
            pw.display().to_string(),
            acl_path.display().to_string()
        ),
    )?;
    Ok(config)
}

fn start(prefix: &str, passwd: &str, extra: &str) -> Result<Setup> {
    let dir = ScratchDir::new(prefix)?;
    let config = write_config(&dir, passwd, ACL, extra)?;
    let broker = Midged::start(midged(), &["-c", config.to_str().unwrap(), "-v"])?;
    Ok(Setup { dir, broker })
}

// ---- raw MQTT ------------------------------------------------------------

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s);
}

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

struct Conn {
    stream: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        Ok(Self { stream })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// One packet: (first byte, body).
    fn read(&mut self) -> Result<(u8, Vec<u8>)> {
        let mut first = [0u8; 1];
        self.stream
            .read_exact(&mut first)
            .context("reading a packet")?;
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

    /// Sends CONNECT and returns the CONNACK return code.
    fn connect(
        &mut self,
        client_id: &str,
        user: Option<&str>,
        password: Option<&str>,
        will: Option<(&str, &str)>,
    ) -> Result<u8> {
        let mut flags = 0x02u8; // clean session
        if will.is_some() {
            flags |= 0x04;
        }
        if user.is_some() {
            flags |= 0x80;
        }
        if password.is_some() {
            flags |= 0x40;
        }
        let mut body = Vec::new();
        string(&mut body, b"MQTT");
        body.extend_from_slice(&[0x04, flags, 0x00, 0x3c]);
        string(&mut body, client_id.as_bytes());
        if let Some((topic, message)) = will {
            string(&mut body, topic.as_bytes());
            string(&mut body, message.as_bytes());
        }
        if let Some(user) = user {
            string(&mut body, user.as_bytes());
        }
        if let Some(password) = password {
            string(&mut body, password.as_bytes());
        }
        self.send(&frame(0x10, &body))?;
        let (first, body) = self.read()?;
        if first != 0x20 || body.len() != 2 {
            bail!("expected CONNACK, got {first:#04x} {body:?}");
        }
        Ok(body[1])
    }

    /// SUBSCRIBE one filter at QoS 1; the SUBACK return code.
    fn subscribe(&mut self, pid: u16, filter: &str) -> Result<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        string(&mut body, filter.as_bytes());
        body.push(0x01);
        self.send(&frame(0x82, &body))?;
        let (first, body) = self.read()?;
        if first != 0x90 || body.len() != 3 || body[..2] != pid.to_be_bytes() {
            bail!("expected SUBACK {pid}, got {first:#04x} {body:?}");
        }
        Ok(body[2])
    }

    /// PUBLISH at QoS 1 and wait for its PUBACK.
    fn publish_qos1(&mut self, pid: u16, topic: &str, payload: &str) -> Result<()> {
        let mut body = Vec::new();
        string(&mut body, topic.as_bytes());
        body.extend_from_slice(&pid.to_be_bytes());
        body.extend_from_slice(payload.as_bytes());
        self.send(&frame(0x32, &body))?;
        let (first, body) = self.read()?;
        if first != 0x40 || body != pid.to_be_bytes() {
            bail!("expected PUBACK {pid}, got {first:#04x} {body:?}");
        }
        Ok(())
    }

    /// The next PUBLISH received: (topic, payload); acknowledges QoS 1.
    fn next_message(&mut self) -> Result<(String, String)> {
        let (first, body) = self.read()?;
        if first & 0xf0 != 0x30 {
            bail!("expected PUBLISH, got {first:#04x}");
        }
        let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let topic = String::from_utf8(body[2..2 + len].to_vec())?;
        let mut rest = &body[2 + len..];
        if first & 0x06 != 0 {
            let pid = [rest[0], rest[1]];
            rest = &rest[2..];
            self.send(&frame(0x40, &pid))?;
        }
        Ok((topic, String::from_utf8(rest.to_vec())?))
    }
}

fn login(addr: SocketAddr, id: &str, user: &str, password: &str) -> Result<Conn> {
    let mut conn = Conn::open(addr)?;
    let code = conn.connect(id, Some(user), Some(password), None)?;
    if code != 0 {
        bail!("{user} refused with {code:#04x}");
    }
    Ok(conn)
}

// ---- CONNACK codes -------------------------------------------------------

#[test]
fn mqtt_3_2_2_5_connack_codes_for_passwords_and_anonymous_clients() -> Result<()> {
    let s = start("auth-connack", &password_file(), "")?;
    let addr = s.broker.addr();
    let code = |user: Option<&str>, password: Option<&str>| -> Result<u8> {
        Conn::open(addr)?.connect("c1", user, password, None)
    };
    assert_eq!(code(Some("alice"), Some("wonderland"))?, 0x00);
    assert_eq!(
        code(Some("alice"), Some("Wonderland"))?,
        0x04,
        "wrong password"
    );
    assert_eq!(code(Some("alice"), None)?, 0x04, "missing password");
    assert_eq!(
        code(Some("mallory"), Some("wonderland"))?,
        0x04,
        "unknown user"
    );
    assert_eq!(code(None, None)?, 0x05, "anonymous, off by default");
    // [MQTT-3.2.2-5]: a refused connection is closed after the CONNACK.
    let mut refused = Conn::open(addr)?;
    assert_eq!(refused.connect("c2", Some("bob"), Some("x"), None)?, 0x04);
    let mut byte = [0u8; 1];
    assert_eq!(refused.stream.read(&mut byte)?, 0, "closed after 0x04");
    Ok(())
}

#[test]
fn allow_anonymous_true_lets_clients_without_a_name_in() -> Result<()> {
    let s = start("auth-anon", &password_file(), "allow_anonymous = true\n")?;
    let mut conn = Conn::open(s.broker.addr())?;
    assert_eq!(conn.connect("anon", None, None, None)?, 0x00);
    // The ACL has no anonymous rules: it may do nothing.
    assert_eq!(conn.subscribe(1, "home/#")?, 0x80);
    Ok(())
}

// ---- ACL outcomes --------------------------------------------------------

#[test]
fn mqtt_3_8_4_5_denied_filters_get_0x80_and_granted_ones_their_qos() -> Result<()> {
    let s = start("auth-suback", &password_file(), "")?;
    let mut bob = login(s.broker.addr(), "bob-1", "bob", "builder")?;
    assert_eq!(bob.subscribe(1, "home/kitchen")?, 0x01);
    assert_eq!(
        bob.subscribe(2, "alarms/#")?,
        0x80,
        "bob may only write alarms"
    );
    assert_eq!(bob.subscribe(3, "#")?, 0x80, "wider than his rule");
    assert_eq!(bob.subscribe(4, "clients/bob-1/inbox")?, 0x01, "%c pattern");
    assert_eq!(bob.subscribe(5, "clients/other/inbox")?, 0x80);
    let mut alice = login(s.broker.addr(), "alice-1", "alice", "wonderland")?;
    assert_eq!(
        alice.subscribe(1, "home/#")?,
        0x80,
        "overlaps her deny rule"
    );
    assert_eq!(alice.subscribe(2, "home/+/temp")?, 0x01);
    Ok(())
}

#[test]
fn mqtt_3_3_5_2_denied_publishes_are_acknowledged_and_dropped() -> Result<()> {
    let s = start("auth-publish", &password_file(), "")?;
    let addr = s.broker.addr();
    let mut bob = login(addr, "bob-1", "bob", "builder")?;
    assert_eq!(bob.subscribe(1, "home/#")?, 0x01);
    let mut alice = login(addr, "alice-1", "alice", "wonderland")?;
    // Denied (deny rule, then no rule at all): PUBACK as usual, not routed.
    alice.publish_qos1(1, "home/secret", "leak")?;
    alice.publish_qos1(2, "garden/x", "nowhere")?;
    // bob may not write home/: also acknowledged and dropped.
    bob.publish_qos1(3, "home/door", "forged")?;
    alice.publish_qos1(4, "home/door", "open")?;
    // The first message bob receives is the allowed one.
    assert_eq!(
        bob.next_message()?,
        ("home/door".to_string(), "open".to_string())
    );
    // The broker logs each denial at debug with the running count.
    s.broker.process().stderr().wait_for(TIMEOUT, |l| {
        l.contains("publish denied") && l.contains("denied_publishes=3")
    })?;
    Ok(())
}

#[test]
fn a_will_on_a_topic_the_client_may_not_write_is_dropped() -> Result<()> {
    let s = start("auth-will", &password_file(), "")?;
    let addr = s.broker.addr();
    let mut bob = login(addr, "bob-1", "bob", "builder")?;
    assert_eq!(bob.subscribe(1, "home/#")?, 0x01);
    // alice may write home/door but not home/secret.
    let mut denied = Conn::open(addr)?;
    let code = denied.connect(
        "alice-will",
        Some("alice"),
        Some("wonderland"),
        Some(("home/secret", "gone")),
    )?;
    assert_eq!(code, 0x00, "the connection itself is accepted");
    drop(denied); // no DISCONNECT: the will is due, and dropped.
    let mut allowed = Conn::open(addr)?;
    let code = allowed.connect(
        "alice-will-2",
        Some("alice"),
        Some("wonderland"),
        Some(("home/door", "alice left")),
    )?;
    assert_eq!(code, 0x00);
    // Wait until the broker has handled the first close before the second.
    s.broker.process().stderr().wait_for(TIMEOUT, |l| {
        l.contains("publish denied") && l.contains("home/secret")
    })?;
    drop(allowed);
    assert_eq!(
        bob.next_message()?,
        ("home/door".to_string(), "alice left".to_string())
    );
    Ok(())
}

// ---- SIGHUP --------------------------------------------------------------

fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -{signal} failed");
    }
    Ok(())
}

#[test]
fn sighup_reloads_both_files_without_dropping_connections() -> Result<()> {
    let s = start("auth-hup", &password_file(), "")?;
    let addr = s.broker.addr();
    let mut bob = login(addr, "bob-1", "bob", "builder")?;
    assert_eq!(bob.subscribe(1, "garden/#")?, 0x80);
    // New rules: bob may read garden/#; carol joins.
    std::fs::write(
        s.path("acl"),
        format!("{ACL}user bob\ntopic read garden/#\n"),
    )?;
    let mut passwd = PasswordFile::parse(&password_file())?;
    passwd.set("carol", PasswordHash::pbkdf2(b"c4rol", b"salt-c", 10)?)?;
    std::fs::write(s.path("passwd"), passwd.to_string())?;
    assert_eq!(
        Conn::open(addr)?.connect("c", Some("carol"), Some("c4rol"), None)?,
        0x04
    );
    send_signal(s.broker.process().id(), "HUP")?;
    s.broker
        .process()
        .stderr()
        .wait_for(TIMEOUT, |l| l.contains("[auth] files reloaded"))?;
    // The same connection now gets the new verdict.
    assert_eq!(bob.subscribe(2, "garden/#")?, 0x01);
    assert_eq!(
        Conn::open(addr)?.connect("c", Some("carol"), Some("c4rol"), None)?,
        0x00
    );
    // A broken file keeps the rules in force.
    std::fs::write(s.path("passwd"), "carol:plaintext\n")?;
    send_signal(s.broker.process().id(), "HUP")?;
    s.broker
        .process()
        .stderr()
        .wait_for(TIMEOUT, |l| l.contains("keeping the previous [auth] rules"))?;
    assert_eq!(
        Conn::open(addr)?.connect("c", Some("carol"), Some("c4rol"), None)?,
        0x00
    );
    assert_eq!(
        bob.subscribe(3, "garden/x")?,
        0x01,
        "bob is still connected"
    );
    Ok(())
}

// ---- configuration refusals -----------------------------------------------

fn exit_code(args: &[&str]) -> Result<(i32, String)> {
    let mut cmd = Command::new(midged());
    cmd.args(["--persistence", "none"]).args(args);
    let mut process = Process::spawn("midged", &mut cmd)?;
    let status = process.wait_timeout(TIMEOUT)?;
    // Exited: collect stderr to its end (the reader may lag behind).
    let stderr = process.stderr().wait_closed(TIMEOUT)?.join("\n");
    Ok((status.code().unwrap_or(-1), stderr))
}

#[test]
fn a_password_file_on_a_public_plain_listener_is_refused_unless_allowed() -> Result<()> {
    let dir = ScratchDir::new("auth-insecure")?;
    let config = write_config(&dir, &password_file(), ACL, "")?;
    let config = config.to_str().unwrap();
    let (code, output) = exit_code(&["-c", config, "--bind", "0.0.0.0", "-p", "0"])?;
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("allow_insecure_passwords"), "{output}");
    // Explicitly allowed: it starts.
    let allowed = write_config(
        &dir,
        &password_file(),
        ACL,
        "allow_insecure_passwords = true\n",
    )?;
    let mut cmd = Command::new(midged());
    cmd.args([
        "--persistence",
        "none",
        "-c",
        allowed.to_str().unwrap(),
        "--bind",
        "0.0.0.0",
        "-p",
        "0",
    ]);
    let process = Process::spawn("midged", &mut cmd)?;
    process
        .stderr()
        .wait_for(TIMEOUT, |l| l.contains("listening on"))?;
    Ok(())
}

#[test]
fn bad_auth_files_exit_two_naming_file_and_line() -> Result<()> {
    let dir = ScratchDir::new("auth-bad")?;
    let config = write_config(&dir, "alice:wonderland\n", ACL, "")?;
    let (code, output) = exit_code(&["-c", config.to_str().unwrap(), "-p", "0"])?;
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("passwd: line 1") && output.contains("not hashed"),
        "{output}"
    );
    let config = write_config(&dir, &password_file(), "user a\ntopik x\n", "")?;
    let (code, output) = exit_code(&["-c", config.to_str().unwrap(), "-p", "0"])?;
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("acl: line 2"), "{output}");
    Ok(())
}

// ---- Mosquitto's tools -----------------------------------------------------

#[test]
fn mosquitto_passwd_files_and_mosquitto_clients_work_against_midged() -> Result<()> {
    let (Some(passwd), Some(clients)) = (find_peer("mosquitto_passwd")?, MosquittoClients::find()?)
    else {
        return Ok(());
    };
    let dir = ScratchDir::new("auth-mosq")?;
    let pw = dir.path().join("mosq-passwd");
    let pw_str = pw.to_str().unwrap();
    for args in [
        vec!["-c", "-b", pw_str, "alice", "wonderland"],
        vec!["-H", "sha512", "-b", pw_str, "bob", "builder"],
    ] {
        let mut cmd = Command::new(&passwd);
        cmd.args(&args);
        Process::spawn("mosquitto_passwd", &mut cmd)?.wait_timeout(TIMEOUT)?;
    }
    let text = std::fs::read_to_string(&pw)?;
    assert!(
        text.contains("alice:$7$") && text.contains("bob:$6$"),
        "{text}"
    );
    let config = write_config(&dir, &text, ACL, "")?;
    let broker = Midged::start(midged(), &["-c", config.to_str().unwrap(), "-v"])?;
    let port = broker.port();
    let sub = clients.subscribe(
        port,
        &["-u", "bob", "-P", "builder", "-t", "home/#", "-q", "1"],
    )?;
    // Denied for alice (deny rule): acknowledged, so mosquitto_pub succeeds.
    clients.publish(
        port,
        &[
            "-u",
            "alice",
            "-P",
            "wonderland",
            "-t",
            "home/secret",
            "-m",
            "leak",
            "-q",
            "1",
        ],
    )?;
    clients.publish(
        port,
        &[
            "-u",
            "alice",
            "-P",
            "wonderland",
            "-t",
            "home/door",
            "-m",
            "open",
            "-q",
            "1",
        ],
    )?;
    let messages = sub.wait_messages(1, TIMEOUT)?;
    assert_eq!(messages[0].topic, "home/door");
    assert_eq!(messages[0].payload, "open");
    // Wrong password: mosquitto_pub fails.
    let refused = clients.publish(
        port,
        &["-u", "alice", "-P", "nope", "-t", "home/door", "-m", "x"],
    );
    assert!(refused.is_err(), "a wrong password must be refused");
    // A denied subscription: mosquitto_sub is told, and receives nothing.
    let mut cmd = Command::new(clients.sub_program());
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        "bob",
        "-P",
        "builder",
        "-t",
        "alarms/#",
        "-d",
        "-C",
        "1",
        "-W",
        "3",
    ]);
    let mut denied = Process::spawn("mosquitto_sub", &mut cmd)?;
    denied.wait_timeout(TIMEOUT)?;
    let mut lines = denied.stdout().wait_closed(TIMEOUT)?;
    lines.extend(denied.stderr().wait_closed(TIMEOUT)?);
    let output = lines.join("\n");
    assert!(output.contains("SUBACK"), "{output}");
    assert!(
        output.contains("128") || output.to_lowercase().contains("denied"),
        "{output}"
    );
    Ok(())
}

#[test]
fn mosquitto_accepts_a_password_file_written_by_midge_auth() -> Result<()> {
    let (Some(mosquitto), Some(clients)) = (find_peer("mosquitto")?, MosquittoClients::find()?)
    else {
        return Ok(());
    };
    let dir = ScratchDir::new("auth-mosq-broker")?;
    // What `midge passwd` writes: the default iteration count, a 12-byte salt.
    let mut file = PasswordFile::new();
    let hash = PasswordHash::pbkdf2(
        b"wonderland",
        b"0123456789ab",
        midge_auth::DEFAULT_ITERATIONS,
    )?;
    file.set("alice", hash)?;
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, file.to_string())?;
    let port = free_port()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\npassword_file {}\nallow_anonymous false\n",
            pw.display()
        ),
    )?;
    let mut cmd = Command::new(mosquitto);
    cmd.args(["-c", conf.to_str().unwrap()]);
    let _broker = Process::spawn("mosquitto", &mut cmd)?;
    wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), TIMEOUT)?;
    clients.publish(
        port,
        &["-u", "alice", "-P", "wonderland", "-t", "t", "-m", "x"],
    )?;
    let wrong = clients.publish(
        port,
        &["-u", "alice", "-P", "wonderlanD", "-t", "t", "-m", "x"],
    );
    assert!(wrong.is_err(), "mosquitto must refuse a wrong password");
    Ok(())
}
