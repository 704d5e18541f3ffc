//! The real `midge` binary against an in-process broker (and two fake ones):
//! publish and subscribe, retained messages, stdin lines, and every exit
//! code scripts rely on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use midge_tokio::{Runtime, Server, ServerHandle, ServerOptions, TokioRuntime};

/// How long any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

/// A broker on its own thread and runtime, on a free loopback port; shut
/// down when dropped.
struct Broker {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Broker {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let options = ServerOptions {
                    listeners: vec!["127.0.0.1:0".parse().unwrap()],
                    shards: 1,
                    ..ServerOptions::default()
                };
                let server = Server::bind(TokioRuntime::current(), options)
                    .await
                    .unwrap();
                tx.send((server.local_addrs()[0], server.handle())).unwrap();
                server.run().await.unwrap();
            });
        });
        let (addr, handle) = rx.recv_timeout(WAIT).expect("broker starts");
        Self {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A `midge` child, killed when dropped.
struct Midge {
    child: Child,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Midge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Midge {
    fn spawn(args: &[&str], stdin: Option<&[u8]>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_midge"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("midge starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input).unwrap();
        }
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
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
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("no stderr line with {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// Waits for the exit; returns the code, stdout and all of stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "midge did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let out: Option<ChildStdout> = self.child.stdout.take();
        out.unwrap().read_to_string(&mut stdout).unwrap();
        // The reader thread ends at end of file, after the exit.
        while let Ok(line) = self.stderr.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        (status.code(), stdout, self.seen.join("\n"))
    }
}

/// Runs `midge` to completion.
fn run(args: &[&str], stdin: Option<&[u8]>) -> (Option<i32>, String, String) {
    Midge::spawn(args, stdin).finish()
}

/// Starts `midge sub` and waits until its subscriptions are granted.
fn subscriber(args: &[&str]) -> Midge {
    let mut all = vec!["sub", "-d"];
    all.extend_from_slice(args);
    let mut sub = Midge::spawn(&all, None);
    sub.wait_for_stderr("subscribed to");
    sub
}

#[test]
fn pub_qos1_reaches_sub() {
    let broker = Broker::start();
    let port = broker.port();
    let sub = subscriber(&["-C", "1", "-t", "a/b", "-p", &port, "-h", "127.0.0.1"]);
    let (code, _, stderr) = run(
        &[
            "pub",
            "-t",
            "a/b",
            "-m",
            "hello",
            "-q",
            "1",
            "-p",
            &port,
            "-h",
            "127.0.0.1",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = sub.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "hello\n");
}

#[test]
fn sub_verbose_prints_topics_and_several_filters() {
    let broker = Broker::start();
    let port = broker.port();
    let sub = subscriber(&[
        "-v", "-C", "2", "-t", "x/+", "-t", "y/#", "-p", &port, "-q", "2",
    ]);
    for (topic, payload) in [("x/1", "one"), ("y/2/3", "two")] {
        let (code, _, stderr) = run(
            &["pub", "-t", topic, "-m", payload, "-q", "2", "-p", &port],
            None,
        );
        assert_eq!(code, Some(0), "{stderr}");
    }
    let (code, stdout, stderr) = sub.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "x/1 one\ny/2/3 two\n");
}

#[test]
fn retained_message_reaches_a_later_subscriber() {
    let broker = Broker::start();
    let port = broker.port();
    let (code, _, stderr) = run(
        &[
            "pub", "-t", "r/1", "-m", "kept", "-r", "-q", "1", "-p", &port,
        ],
        None,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = run(&["sub", "-t", "r/1", "-C", "1", "-p", &port], None);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "kept\n");
    // -R skips it: nothing arrives before -W expires.
    let (code, stdout, _) = run(&["sub", "-t", "r/1", "-R", "-W", "1", "-p", &port], None);
    assert_eq!(code, Some(27));
    assert_eq!(stdout, "");
    // -r -n clears it.
    let (code, _, stderr) = run(
        &["pub", "-t", "r/1", "-n", "-r", "-q", "1", "-p", &port],
        None,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, _) = run(&["sub", "-t", "r/1", "-W", "1", "-p", &port], None);
    assert_eq!((code, stdout.as_str()), (Some(27), ""));
}

#[test]
fn pub_lines_sends_one_message_per_stdin_line() {
    let broker = Broker::start();
    let port = broker.port();
    let sub = subscriber(&["-C", "3", "-t", "l", "-p", &port, "-q", "1"]);
    let (code, _, stderr) = run(
        &["pub", "-t", "l", "-l", "-q", "1", "-p", &port],
        Some(b"one\ntwo\r\nthree"),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = sub.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "one\ntwo\nthree\n");
}

#[test]
fn pub_file_and_url_form() {
    let broker = Broker::start();
    let port = broker.port();
    let path = std::env::temp_dir().join(format!("midge-cli-{}.txt", std::process::id()));
    std::fs::write(&path, "from a file").unwrap();
    let url = format!("mqtt://127.0.0.1:{port}/f/1");
    let sub = subscriber(&["-C", "1", "-L", &url]);
    let (code, _, stderr) = run(
        &[
            "pub",
            "-t",
            "f/1",
            "-f",
            path.to_str().unwrap(),
            "-q",
            "1",
            "-p",
            &port,
        ],
        None,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = sub.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "from a file\n");
    let _ = std::fs::remove_file(path);
}

#[test]
fn missing_file_exits_one() {
    let (code, _, stderr) = run(
        &["pub", "-t", "t", "-f", "/nonexistent/payload", "-p", "1"],
        None,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/payload"), "{stderr}");
}

#[test]
fn sub_timeout_exits_27() {
    let broker = Broker::start();
    let (code, stdout, stderr) = run(
        &["sub", "-t", "quiet", "-W", "1", "-p", &broker.port()],
        None,
    );
    assert_eq!(code, Some(27), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("timed out"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn sub_disconnects_cleanly_on_sigint() {
    let broker = Broker::start();
    let port = broker.port();
    // A will is published only when a client goes without DISCONNECT: a
    // watcher of the will topic must see nothing.
    let watcher = subscriber(&["-t", "wills/#", "-W", "3", "-p", &port]);
    let sub = subscriber(&[
        "-t",
        "forever",
        "-p",
        &port,
        "--will-topic",
        "wills/sub",
        "--will-payload",
        "vanished",
    ]);
    let status = Command::new("kill")
        .arg("-INT")
        .arg(sub.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let (code, _, stderr) = sub.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, _) = watcher.finish();
    assert_eq!((code, stdout.as_str()), (Some(27), ""));
    assert_eq!(broker.handle.stats().wills_published, 0);
}

#[test]
fn killed_client_will_is_published() {
    // The counterpart of the test above, so it can tell the difference.
    let broker = Broker::start();
    let port = broker.port();
    let watcher = subscriber(&["-t", "wills/#", "-C", "1", "-v", "-p", &port]);
    let mut sub = subscriber(&[
        "-t",
        "forever",
        "-p",
        &port,
        "--will-topic",
        "wills/sub",
        "--will-payload",
        "vanished",
    ]);
    sub.child.kill().unwrap();
    let (code, stdout, stderr) = watcher.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "wills/sub vanished\n");
}

#[test]
fn lost_connection_exits_3() {
    let broker = Broker::start();
    let sub = subscriber(&["-t", "t", "-p", &broker.port()]);
    drop(broker);
    let (code, _, stderr) = sub.finish();
    assert_eq!(code, Some(3), "{stderr}");
}

/// A fake broker that answers the first CONNECT with `reply` and then
/// keeps the connection open until the client goes.
fn fake_broker(reply: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 256];
        // Whatever the CONNECT holds, one read brings its start.
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(reply);
        // Wait for the client to close.
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    });
    (addr, thread)
}

#[test]
fn refused_connection_exits_4_naming_the_code() {
    // CONNACK: not authorised (0x05).
    let (addr, fake) = fake_broker(&[0x20, 0x02, 0x00, 0x05]);
    let (code, _, stderr) = run(
        &[
            "pub",
            "-t",
            "t",
            "-m",
            "x",
            "-p",
            &addr.port().to_string(),
            "-h",
            "127.0.0.1",
        ],
        None,
    );
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("not authorised (0x05)"), "{stderr}");
    fake.join().unwrap();
}

#[test]
fn broken_connack_exits_5() {
    // A CONNACK whose remaining length is wrong breaks the protocol.
    let (addr, fake) = fake_broker(&[0x20, 0x03, 0x00, 0x00, 0x00]);
    let (code, _, stderr) = run(
        &[
            "sub",
            "-t",
            "t",
            "-p",
            &addr.port().to_string(),
            "-h",
            "127.0.0.1",
        ],
        None,
    );
    assert_eq!(code, Some(5), "{stderr}");
    fake.join().unwrap();
}

#[test]
fn unreachable_broker_exits_3() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (code, _, stderr) = run(
        &[
            "pub",
            "-t",
            "t",
            "-m",
            "x",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ],
        None,
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, _) = run(&["pub", "-t", "t"], None);
    assert_eq!(code, Some(2));
    let (code, _, _) = run(&["sub", "-t", "t", "-q", "7"], None);
    assert_eq!(code, Some(2));
    // A wildcard in a topic name is refused before anything is sent.
    let broker = Broker::start();
    let (code, _, stderr) = run(&["pub", "-t", "a/#", "-m", "x", "-p", &broker.port()], None);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn help_lists_exit_codes_and_keeps_dash_h_for_the_host() {
    let (code, stdout, _) = run(&["sub", "--help"], None);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--host"), "{stdout}");
    assert!(stdout.contains("27"), "{stdout}");
    assert!(stdout.contains("Exit codes"), "{stdout}");
}

#[test]
fn broker_can_be_named_by_ipv6_address() {
    // Skip quietly where the machine has no IPv6 loopback.
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        return;
    };
    drop(listener);
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let rt = TokioRuntime::current();
            let options = ServerOptions {
                listeners: vec!["[::1]:0".parse().unwrap()],
                shards: 1,
                ..ServerOptions::default()
            };
            let server = Server::bind(rt.clone(), options).await.unwrap();
            tx.send((server.local_addrs()[0], server.handle())).unwrap();
            server.run().await.unwrap();
        });
    });
    let (addr, handle) = rx.recv_timeout(WAIT).unwrap();
    let (code, _, stderr) = run(
        &[
            "pub",
            "-h",
            "::1",
            "-p",
            &addr.port().to_string(),
            "-t",
            "v6",
            "-m",
            "x",
            "-q",
            "1",
        ],
        None,
    );
    handle.shutdown();
    thread.join().unwrap();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn pub_waits_for_the_acknowledgement_until_timeout_27() {
    // Accepts the connection but never acknowledges the PUBLISH.
    let (addr, fake) = fake_broker(&[0x20, 0x02, 0x00, 0x00]);
    let (code, _, stderr) = run(
        &[
            "pub",
            "-t",
            "t",
            "-m",
            "x",
            "-q",
            "1",
            "-W",
            "1",
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
        ],
        None,
    );
    assert_eq!(code, Some(27), "{stderr}");
    fake.join().unwrap();
}

#[test]
fn persistent_session_keeps_messages_while_away() {
    let broker = Broker::start();
    let port = broker.port();
    let persistent = ["-c", "-i", "keeper", "-q", "1", "-t", "p/1", "-p", &port];
    // Subscribe, then leave (cleanly) when -W expires.
    let mut first = vec!["sub", "-W", "1"];
    first.extend_from_slice(&persistent);
    let (code, _, stderr) = run(&first, None);
    assert_eq!(code, Some(27), "{stderr}");
    let (code, _, stderr) = run(
        &["pub", "-t", "p/1", "-m", "queued", "-q", "1", "-p", &port],
        None,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let mut again = vec!["sub", "-C", "1", "-W", "10"];
    again.extend_from_slice(&persistent);
    let (code, stdout, stderr) = run(&again, None);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "queued\n");
}
