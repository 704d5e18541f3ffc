//! Interop over TLS and WebSocket: `mosquitto_pub`/`mosquitto_sub` and
//! paho-mqtt (`tests/interop/tls_ws.py`) against `midged` with `[tls]` and
//! `[websocket]` listeners, certificates made by the test with rcgen: with
//! and without client certificates, untrusted and expired certificates,
//! certificate reload on SIGHUP, garbage instead of a TLS handshake.
//!
//! Without the peers these tests print a SKIP line and pass; with
//! `MIDGE_REQUIRE_PEERS=1` they fail instead. Every step is bounded in time;
//! every process is killed when a test ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use midge_testkit::Process;
use midge_testkit::{Midged, MosquittoClients, MosquittoSub};
use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

const WAIT: Duration = Duration::from_secs(20);

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    fn issue(&self, cn: &str, server: bool, expired: bool) -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        if server {
            params.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into()?),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ];
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if expired {
            params.not_before = date_time_ymd(2001, 1, 1);
            params.not_after = date_time_ymd(2002, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The PEM files of one test.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Result<Self> {
        let pki = Self {
            dir: tempfile::tempdir()?,
        };
        let ca = Ca::new("Midge Interop CA")?;
        let other = Ca::new("Other CA")?;
        pki.write("ca.pem", &ca.cert.pem())?;
        pki.write("other-ca.pem", &other.cert.pem())?;
        for (name, issuer, cn, server, expired) in [
            ("server", &ca, "localhost", true, false),
            ("other-server", &other, "localhost", true, false),
            ("expired-server", &ca, "localhost", true, true),
            ("client", &ca, "device-7", false, false),
            ("other-client", &other, "intruder", false, false),
        ] {
            let (cert, key) = issuer.issue(cn, server, expired)?;
            pki.write(&format!("{name}.pem"), &cert)?;
            pki.write(&format!("{name}.key"), &key)?;
        }
        Ok(pki)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> Result<()> {
        std::fs::write(self.path(name), text).with_context(|| format!("writing {name}"))
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        std::fs::copy(self.path(from), self.path(to))?;
        Ok(())
    }

    /// A configuration file with TLS on a free port (server certificate
    /// `server`), plus `extra` lines under `[tls]`, and ws/wss listeners.
    fn config(&self, server: &str, extra: &str) -> Result<PathBuf> {
        let text = format!(
            "[tls]\nlisteners = [\"127.0.0.1:0\"]\ncert = {:?}\nkey = {:?}\n{extra}\n\
             [websocket]\nlisteners = [\"127.0.0.1:0\"]\nsecure_listeners = [\"127.0.0.1:0\"]\n",
            self.arg(&format!("{server}.pem")),
            self.arg(&format!("{server}.key")),
        );
        let path = self.path("midge.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// `midged` with the configuration file, and its TLS, ws and wss ports.
struct Broker {
    midged: Midged,
    tls: u16,
    ws: u16,
    wss: u16,
}

fn port_of(midged: &Midged, kind: &str) -> Result<u16> {
    let suffix = format!(" ({kind})");
    let line = midged.process().stderr().wait_for(WAIT, |line| {
        line.contains("listening on ") && line.ends_with(&suffix)
    })?;
    let addr = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .context("no address")?;
    Ok(addr.parse::<SocketAddr>()?.port())
}

impl Broker {
    fn start(config: &Path) -> Result<Self> {
        let config = config.display().to_string();
        let midged = Midged::start(Path::new(env!("CARGO_BIN_EXE_midged")), &["-c", &config])?;
        let tls = port_of(&midged, "tls")?;
        let ws = port_of(&midged, "ws")?;
        let wss = port_of(&midged, "wss")?;
        Ok(Self {
            midged,
            tls,
            ws,
            wss,
        })
    }
}

/// `mosquitto_pub -h localhost -p PORT -t TOPIC -m MSG args..`: whether it
/// succeeded, and its output.
fn mosquitto_pub(clients: &MosquittoClients, port: u16, args: &[&str]) -> Result<(bool, String)> {
    let mut cmd = Command::new(clients.pub_program());
    cmd.args(["-h", "localhost", "-p", &port.to_string(), "-q", "1"])
        .args(args);
    let mut process = Process::spawn("mosquitto_pub", &mut cmd)?;
    let status = process.wait_timeout(WAIT)?;
    Ok((status.success(), process.output_so_far()))
}

/// `mosquitto_sub` on `topic` over TLS (to 127.0.0.1, which the server
/// certificate names too) in the background, subscribed once this returns.
fn mosquitto_sub_tls(
    clients: &MosquittoClients,
    port: u16,
    topic: &str,
    cafile: &str,
) -> Result<MosquittoSub> {
    clients.subscribe(port, &["-t", topic, "-q", "1", "--cafile", cafile])
}

/// Waits for one message on `sub`; its payload.
fn one_payload(sub: &MosquittoSub) -> Result<String> {
    let messages = sub.wait_messages(1, WAIT)?;
    match messages.first() {
        Some(m) => Ok(m.payload.clone()),
        None => bail!("no message"),
    }
}

#[test]
fn interop_tls_mosquitto_clients_with_and_without_client_certificates() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let pki = Pki::new()?;
    // Client certificates optional: both kinds of client are served.
    let config = pki.config("server", &format!("client_ca = {:?}", pki.arg("ca.pem")))?;
    let broker = Broker::start(&config)?;
    let ca = pki.arg("ca.pem");
    let (cert, key) = (pki.arg("client.pem"), pki.arg("client.key"));
    let sub = mosquitto_sub_tls(&clients, broker.tls, "tls/a", &ca)?;
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &[
            "--cafile",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-t",
            "tls/a",
            "-m",
            "hello tls",
        ],
    )?;
    assert!(ok, "{out}");
    assert_eq!(one_payload(&sub)?, "hello tls");
    drop(sub);
    drop(broker);

    // Client certificates required.
    let config = pki.config(
        "server",
        &format!(
            "client_ca = {:?}\nrequire_client_cert = true",
            pki.arg("ca.pem")
        ),
    )?;
    let broker = Broker::start(&config)?;
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &["--cafile", &ca, "-t", "x", "-m", "m"],
    )?;
    assert!(!ok, "no client certificate must be refused: {out}");
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &[
            "--cafile",
            &ca,
            "--cert",
            &pki.arg("other-client.pem"),
            "--key",
            &pki.arg("other-client.key"),
            "-t",
            "x",
            "-m",
            "m",
        ],
    )?;
    assert!(!ok, "a certificate from another CA must be refused: {out}");
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &[
            "--cafile", &ca, "--cert", &cert, "--key", &key, "-t", "x", "-m", "m",
        ],
    )?;
    assert!(ok, "{out}");
    Ok(())
}

/// Whether mosquitto_pub's output tells of a failed TLS handshake (its
/// usual words are "Unable to connect (A TLS error occurred.)", with an
/// OpenSSL error line on some versions).
fn tls_failure(out: &str) -> bool {
    let out = out.to_lowercase();
    ["tls error", "ssl", "certificate"]
        .iter()
        .any(|w| out.contains(w))
}

#[test]
fn interop_tls_mosquitto_pub_refuses_wrong_ca_and_expired_certificates() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let pki = Pki::new()?;
    let broker = Broker::start(&pki.config("server", "")?)?;
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &["--cafile", &pki.arg("other-ca.pem"), "-t", "x", "-m", "m"],
    )?;
    assert!(!ok, "an untrusted server certificate must fail: {out}");
    assert!(tls_failure(&out), "{out}");
    drop(broker);

    let broker = Broker::start(&pki.config("expired-server", "")?)?;
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &["--cafile", &pki.arg("ca.pem"), "-t", "x", "-m", "m"],
    )?;
    assert!(!ok, "an expired server certificate must fail: {out}");
    assert!(tls_failure(&out), "{out}");
    Ok(())
}

#[test]
fn interop_tls_sighup_reloads_the_certificate_and_keeps_connections() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let pki = Pki::new()?;
    pki.copy("server.pem", "live.pem")?;
    pki.copy("server.key", "live.key")?;
    let broker = Broker::start(&pki.config("live", "")?)?;
    let ca = pki.arg("ca.pem");
    let other = pki.arg("other-ca.pem");
    // A subscriber connected before the reload.
    let sub = mosquitto_sub_tls(&clients, broker.tls, "reload/t", &ca)?;

    pki.copy("other-server.pem", "live.pem")?;
    pki.copy("other-server.key", "live.key")?;
    let pid = broker.midged.process().id().to_string();
    let mut kill = Command::new("kill");
    kill.args(["-HUP", &pid]);
    Process::run("kill -HUP", &mut kill, WAIT)?;
    broker
        .midged
        .process()
        .stderr()
        .wait_for(WAIT, |line| line.contains("[tls] files reloaded"))?;

    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &["--cafile", &ca, "-t", "x", "-m", "m"],
    )?;
    assert!(
        !ok,
        "the old CA must no longer verify the new certificate: {out}"
    );
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &["--cafile", &other, "-t", "reload/t", "-m", "after reload"],
    )?;
    assert!(ok, "{out}");
    // The subscriber from before the reload still gets messages.
    assert_eq!(one_payload(&sub)?, "after reload");
    Ok(())
}

#[test]
fn interop_tls_garbage_handshake_is_closed_and_the_broker_keeps_serving() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let pki = Pki::new()?;
    let broker = Broker::start(&pki.config("server", "")?)?;
    for port in [broker.tls, broker.wss, broker.ws] {
        let mut garbage = TcpStream::connect(("127.0.0.1", port))?;
        garbage.set_read_timeout(Some(WAIT))?;
        garbage.write_all(&[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02])?;
        garbage.write_all(&[0xEE; 200])?;
        garbage.write_all(b"\r\n\r\n")?;
        let mut buf = [0u8; 512];
        // The broker answers with an alert or an HTTP error at most, then
        // closes: reading ends (0 or a reset) before the timeout.
        let mut closed = false;
        for _ in 0..32 {
            match garbage.read(&mut buf) {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
            }
        }
        assert!(closed, "port {port} kept the garbage connection open");
    }
    let (ok, out) = mosquitto_pub(
        &clients,
        broker.tls,
        &["--cafile", &pki.arg("ca.pem"), "-t", "x", "-m", "m"],
    )?;
    assert!(ok, "{out}");
    Ok(())
}

/// Runs tests/interop/tls_ws.py; its JSON result.
fn paho(python: &Path, args: &[&str]) -> Result<serde_json::Value> {
    midge_testkit::run_python(
        python,
        &midge_testkit::interop_script("tls_ws.py"),
        args,
        WAIT,
    )
}

#[test]
fn interop_paho_over_tls_websocket_and_secure_websocket() -> Result<()> {
    let Some(python) = midge_testkit::find_python()? else {
        return Ok(());
    };
    let pki = Pki::new()?;
    let config = pki.config("server", &format!("client_ca = {:?}", pki.arg("ca.pem")))?;
    let broker = Broker::start(&config)?;
    let ca = pki.arg("ca.pem");
    let (tls, ws, wss) = (
        broker.tls.to_string(),
        broker.ws.to_string(),
        broker.wss.to_string(),
    );
    let runs: [(&str, Vec<&str>); 4] = [
        ("tls", vec!["--port", &tls, "--tls", "--cafile", &ca]),
        (
            "tls with a client certificate",
            vec![
                "--port", &tls, "--tls", "--cafile", &ca, "--cert", "CERT", "--key", "KEY",
            ],
        ),
        ("ws", vec!["--port", &ws, "--transport", "websockets"]),
        (
            "wss",
            vec![
                "--port",
                &wss,
                "--transport",
                "websockets",
                "--tls",
                "--cafile",
                &ca,
            ],
        ),
    ];
    let (cert, key) = (pki.arg("client.pem"), pki.arg("client.key"));
    for (what, args) in runs {
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| match a {
                "CERT" => cert.as_str(),
                "KEY" => key.as_str(),
                other => other,
            })
            .collect();
        let result = paho(&python, &args)?;
        if result["connected"] != true || result["messages"].as_array().map(Vec::len) != Some(1) {
            bail!("paho over {what}: {result}");
        }
    }
    // The wrong CA: the handshake fails on paho's side.
    let result = paho(
        &python,
        &[
            "--port",
            &tls,
            "--tls",
            "--cafile",
            &pki.arg("other-ca.pem"),
        ],
    )?;
    assert_eq!(result["connected"], false, "{result}");
    let error = result["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("CERTIFICATE_VERIFY_FAILED"), "{result}");
    Ok(())
}
