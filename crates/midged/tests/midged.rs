//! The real `midged` binary: start-up, a raw MQTT exchange, signals, and
//! the refusals (bad configuration, port in use) with their exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use midge_codec::{Connect, Encode, MqttString};

/// How long any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

/// A running `midged`, killed when dropped (a failing test leaves nothing
/// behind).
struct Midged {
    child: Child,
    /// Stderr lines as they arrive.
    lines: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Drop for Midged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Midged {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_midged"))
            .args(["--persistence", "none"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("midged starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle` and returns it.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// The address from the "listening on ADDR" line.
    fn address(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening on ");
        let (_, rest) = line.split_once("listening on ").unwrap();
        let addr = rest.split_whitespace().next().unwrap();
        addr.parse()
            .unwrap_or_else(|_| panic!("bad address in {line:?}"))
    }

    /// Waits for the process to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        wait_child(&mut self.child)
    }
}

fn wait_child(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `midged` to completion (it is expected to refuse to start) and
/// returns its exit code and stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_midged"))
        .args(["--persistence", "none"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_child(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("midged-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn accepts_a_raw_connect_and_answers_connack() {
    let mut midged = Midged::start(&["-p", "0"]);
    let addr = midged.address();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = BytesMut::new();
    Connect::new(MqttString::new("raw-tester").unwrap(), 30)
        .encode(&mut buf)
        .unwrap();
    stream.write_all(&buf).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    // CONNACK, remaining length 2, no session present, accepted.
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    // The server logs one line per connection, and it shows at the
    // default level.
    let line = midged.wait_for_line("client connected");
    assert!(line.contains("raw-tester"), "{line}");
}

#[cfg(unix)]
fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_and_exits_zero() {
    let mut midged = Midged::start(&["--port", "0"]);
    let addr = midged.address();
    // A connected client does not keep the broker from stopping.
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut buf = BytesMut::new();
    Connect::new(MqttString::new("stay").unwrap(), 0)
        .encode(&mut buf)
        .unwrap();
    stream.write_all(&buf).unwrap();
    midged.wait_for_line("client connected");
    send_signal(&midged.child, "TERM");
    let status = midged.wait_exit();
    assert_eq!(status.code(), Some(0));
    midged.wait_for_line("stopped");
}

#[cfg(unix)]
#[test]
fn sigint_shuts_down_and_exits_zero() {
    let mut midged = Midged::start(&["-p", "0", "--bind", "127.0.0.1"]);
    midged.address();
    send_signal(&midged.child, "INT");
    assert_eq!(midged.wait_exit().code(), Some(0));
}

#[test]
fn listens_on_every_bind_address() {
    let mut midged = Midged::start(&["-p", "0", "--bind", "127.0.0.1", "--bind", "127.0.0.1:0"]);
    let first = midged.address();
    let second = midged.address();
    assert_ne!(first.port(), second.port());
    TcpStream::connect(first).unwrap();
    TcpStream::connect(second).unwrap();
}

#[test]
fn config_file_listeners_and_port_flag() {
    let path = temp_file(
        "listeners.toml",
        "listeners = [\"127.0.0.1:1\"]\nlog_level = \"debug\"\n[limits]\nmax_connections = 5\n",
    );
    // -p 0 replaces the file's port.
    let mut midged = Midged::start(&["-c", path.to_str().unwrap(), "-p", "0"]);
    let addr = midged.address();
    assert_ne!(addr.port(), 1);
    TcpStream::connect(addr).unwrap();
}

#[test]
fn port_in_use_exits_one_with_a_message() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (code, stderr) = run_to_exit(&["--bind", &addr.to_string()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unknown_key_exits_two_naming_file_line_and_key() {
    let path = temp_file("unknown.toml", "shards = 1\n[limits]\nmax_conections = 3\n");
    let (code, stderr) = run_to_exit(&["-c", path.to_str().unwrap(), "-p", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown.toml:3:"), "{stderr}");
    assert!(stderr.contains("limits.max_conections"), "{stderr}");
    assert!(stderr.contains("unknown key"), "{stderr}");
}

#[test]
fn bad_value_exits_two_naming_line_and_key() {
    let path = temp_file("badvalue.toml", "\n[session]\nexpiry = \"soon\"\n");
    let (code, stderr) = run_to_exit(&["-c", path.to_str().unwrap(), "-p", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("badvalue.toml:3:"), "{stderr}");
    assert!(stderr.contains("session.expiry"), "{stderr}");
}

#[test]
fn missing_config_file_exits_two() {
    let (code, stderr) = run_to_exit(&["-c", "/nonexistent/midge.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/midge.toml"), "{stderr}");
}

#[test]
fn bad_flag_is_a_usage_error() {
    let (code, stderr) = run_to_exit(&["--bind", "not-an-address"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--bind"), "{stderr}");
}

#[test]
fn example_configuration_starts_the_broker() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../midge.example.toml");
    let mut midged = Midged::start(&["-c", example, "-p", "0"]);
    let addr = midged.address();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
}
