//! `cargo xtask broker-bench`: `midged`, Mosquitto and rumqttd side by side,
//! driven by `midge bench`, in one run on this machine.
//!
//! Each scenario runs against each broker in turn (brokers interleaved, so
//! drift of a noisy machine spreads over all of them). For every run the
//! harness samples the broker's resident memory (peak of `VmRSS` during the
//! run) and the CPU time it used (`utime + stime`), and prints one Markdown
//! table. Brokers listen on free loopback ports with configuration files
//! written here; nothing is installed except rumqttd, built with `cargo
//! install` into `target/peers/rumqttd` when it is missing (Mosquitto comes
//! from `cargo xtask peers`).
//!
//! `--durability` measures QoS 1 throughput into persistent subscribers
//! instead: `midged --persistence none`, then durable with `--fsync never`,
//! `batch` and `always` (a fresh data directory under
//! `target/broker-bench` each), and Mosquitto with `persistence true` and
//! its default autosave settings, side by side.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::util;

/// One broker under test.
struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A scenario: its name and the `midge bench` flags.
struct Scenario {
    name: &'static str,
    args: Vec<String>,
    idle: bool,
}

/// The measurements of one scenario on one broker.
#[derive(Default, Clone)]
struct Sample {
    result: Option<Value>,
    peak_rss_kib: u64,
    rss_before_kib: u64,
    rss_loaded_kib: u64,
    cpu_secs: f64,
    error: Option<String>,
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = 10u64;
    let mut only: Option<Vec<String>> = None;
    let mut durability = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = iter
                    .next()
                    .context("--seconds needs a value")?
                    .parse()
                    .context("--seconds must be a number")?;
            }
            "--brokers" => {
                only = Some(
                    iter.next()
                        .context("--brokers needs a comma-separated list")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "--durability" => durability = true,
            other => bail!("broker-bench: unknown argument `{other}`"),
        }
    }
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));

    util::run(&mut util::cargo(
        root,
        ["build", "--release", "-p", "midged", "-p", "midge"],
    ))?;
    let release = root.join("target/release");
    let midge = release.join("midge");
    let work = root.join("target/broker-bench");
    std::fs::create_dir_all(&work)?;

    // Which brokers are available; each is started afresh for every
    // scenario, so memory figures belong to that scenario alone.
    let mut kinds: Vec<(&'static str, PathBuf)> = Vec::new();
    if wanted("midged") {
        kinds.push(("midged", release.join("midged")));
    }
    if wanted("mosquitto") {
        match find_program("mosquitto", &["/usr/sbin/mosquitto"]) {
            Some(path) => kinds.push(("mosquitto", path)),
            None => {
                eprintln!("broker-bench: mosquitto not found (run `cargo xtask peers`); skipped");
            }
        }
    }
    if wanted("rumqttd") {
        match rumqttd(root) {
            Ok(path) => kinds.push(("rumqttd", path)),
            Err(err) => eprintln!("broker-bench: rumqttd unavailable ({err:#}); skipped"),
        }
    }
    if durability {
        kinds = durability_brokers(&release, wanted);
    }
    if kinds.is_empty() {
        bail!("no broker to measure");
    }

    let d = seconds.to_string();
    let scenarios = if durability {
        durability_scenarios(&d)
    } else {
        standard_scenarios(&d)
    };
    measure_all(&midge, &work, &kinds, &scenarios, seconds)
}

/// The brokers of `--durability`: midged in each persistence mode, and
/// Mosquitto with persistence on.
fn durability_brokers(
    release: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Vec<(&'static str, PathBuf)> {
    let mut kinds: Vec<(&'static str, PathBuf)> = Vec::new();
    if wanted("midged") {
        for name in [
            "midged none",
            "midged fsync=never",
            "midged fsync=batch",
            "midged fsync=always",
        ] {
            kinds.push((name, release.join("midged")));
        }
    }
    if wanted("mosquitto") {
        match find_program("mosquitto", &["/usr/sbin/mosquitto"]) {
            Some(path) => kinds.push(("mosquitto persistence", path)),
            None => {
                eprintln!("broker-bench: mosquitto not found (run `cargo xtask peers`); skipped");
            }
        }
    }
    kinds
}

/// QoS 1 into persistent subscribers: what a durable broker records. (Not
/// QoS 2: `midge bench` keeps 100 in flight, above midged's default 64
/// inbound QoS 2 ids.)
fn durability_scenarios(d: &str) -> Vec<Scenario> {
    let args = |qos: &str, rate: Option<&str>| {
        let mut v: Vec<String> = [
            "--pairs",
            "4",
            "-q",
            qos,
            "-s",
            "64",
            "-d",
            d,
            "--persistent",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        if let Some(rate) = rate {
            v.extend(["--rate".to_owned(), rate.to_owned()]);
        }
        v
    };
    vec![
        Scenario {
            name: "QoS 1, 4 publishers → 4 persistent subscribers (1:1), 64 B, max rate",
            args: args("1", None),
            idle: false,
        },
        Scenario {
            name: "QoS 1, 4 → 4 persistent (1:1), 64 B, 2000 msg/s in total (latency)",
            args: args("1", Some("2000")),
            idle: false,
        },
    ]
}

fn measure_all(
    midge: &Path,
    work: &Path,
    kinds: &[(&'static str, PathBuf)],
    scenarios: &[Scenario],
    seconds: u64,
) -> Result<()> {
    let mut table: Vec<Vec<Sample>> = Vec::new();
    for scenario in scenarios {
        let mut row = Vec::new();
        for (name, path) in kinds {
            eprintln!("broker-bench: {} on {name}", scenario.name);
            let sample = start(name, path, work)
                .and_then(|broker| measure(midge, &broker, scenario))
                .unwrap_or_else(|err| Sample {
                    error: Some(format!("{err:#}")),
                    ..Sample::default()
                });
            if let Some(error) = &sample.error {
                eprintln!("broker-bench:   error: {error}");
            }
            row.push(sample);
        }
        table.push(row);
    }

    let names: Vec<&str> = kinds.iter().map(|(name, _)| *name).collect();
    let report = render(&names, scenarios, &table, seconds);
    print!("{report}");
    std::fs::write(work.join("report.md"), &report)?;
    eprintln!(
        "broker-bench: report written to {}",
        work.join("report.md").display()
    );
    Ok(())
}

fn standard_scenarios(d: &str) -> Vec<Scenario> {
    let d = d.to_owned();
    vec![
        Scenario {
            name: "QoS 0, 4 publishers → 4 subscribers (1:1), 64 B, max rate",
            args: vec!["--pairs", "4", "-q", "0", "-s", "64", "-d", &d]
                .into_iter()
                .map(String::from)
                .collect(),
            idle: false,
        },
        Scenario {
            name: "QoS 1, 4 publishers → 4 subscribers (1:1), 64 B, max rate",
            args: vec!["--pairs", "4", "-q", "1", "-s", "64", "-d", &d]
                .into_iter()
                .map(String::from)
                .collect(),
            idle: false,
        },
        Scenario {
            name: "QoS 0, 1 publisher → 10 subscribers (fan-out), 64 B, max rate",
            args: vec![
                "--pairs", "1", "--fanout", "10", "-q", "0", "-s", "64", "-d", &d,
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            idle: false,
        },
        Scenario {
            name: "QoS 0, 4 → 4 (1:1), 64 B, 10 000 msg/s in total (latency)",
            args: vec![
                "--pairs", "4", "-q", "0", "-s", "64", "--rate", "10000", "-d", &d,
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            idle: false,
        },
        Scenario {
            name: "1000 idle connections (memory per connection)",
            args: vec!["--idle", "1000", "-d", "3"]
                .into_iter()
                .map(String::from)
                .collect(),
            idle: true,
        },
    ]
}

fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    extra.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// rumqttd 0.20.0, built once into `target/peers/rumqttd` (not `--locked`:
/// its lock file pins a `metrics` release that today's rustc rejects).
fn rumqttd(root: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("RUMQTTD") {
        return Ok(PathBuf::from(path));
    }
    let dir = root.join("target/peers/rumqttd");
    let bin = dir.join("bin/rumqttd");
    if !bin.is_file() {
        eprintln!(
            "broker-bench: building rumqttd 0.20.0 into {}",
            dir.display()
        );
        let mut cmd = Command::new(util::cargo_program());
        cmd.args(["install", "rumqttd", "--version", "0.20.0", "--root"])
            .arg(&dir);
        util::run(&mut cmd)?;
    }
    Ok(bin)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn wait_for_port(port: u16, child: &mut Child, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited at start ({status})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{name} did not listen on {addr} within 15 s")
}

fn spawn(name: &'static str, mut cmd: Command, port: u16, work: &Path) -> Result<Broker> {
    let log = std::fs::File::create(work.join(format!("{name}.log")))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    if let Err(err) = wait_for_port(port, &mut child, name) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    Ok(Broker { child, port })
}

fn start(name: &'static str, path: &Path, work: &Path) -> Result<Broker> {
    match name {
        "midged" | "midged none" => start_midged(path, work, name, None),
        "midged fsync=never" => start_midged(path, work, name, Some("never")),
        "midged fsync=batch" => start_midged(path, work, name, Some("batch")),
        "midged fsync=always" => start_midged(path, work, name, Some("always")),
        "mosquitto" => start_mosquitto(path, work, false),
        "mosquitto persistence" => start_mosquitto(path, work, true),
        _ => start_rumqttd(path, work),
    }
}

/// `fsync`: `None` runs in memory (`--persistence none`); otherwise durable
/// in a fresh data directory.
fn start_midged(
    path: &Path,
    work: &Path,
    name: &'static str,
    fsync: Option<&str>,
) -> Result<Broker> {
    let port = free_port()?;
    let mut cmd = Command::new(path);
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "-q"]);
    match fsync {
        None => {
            cmd.args(["--persistence", "none"]);
        }
        Some(fsync) => {
            let data = work.join(format!("midged-data-{fsync}"));
            let _ = std::fs::remove_dir_all(&data);
            cmd.args(["--persistence", "durable", "--fsync", fsync, "--data-dir"])
                .arg(&data);
        }
    }
    spawn(name, cmd, port, work)
}

/// With `persistence`, Mosquitto's persistence on with its default autosave
/// settings (a snapshot every 1800 s and at exit), in a fresh directory.
fn start_mosquitto(path: &Path, work: &Path, persistence: bool) -> Result<Broker> {
    let port = free_port()?;
    let conf = work.join("mosquitto.conf");
    let persist = if persistence {
        let dir = work.join("mosquitto-data");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        format!(
            "persistence true\npersistence_location {}/\n",
            dir.display()
        )
    } else {
        String::from("persistence false\n")
    };
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n{persist}max_connections -1\nlog_dest stderr\nlog_type error\n"
        ),
    )?;
    let mut cmd = Command::new(path);
    cmd.arg("-c").arg(&conf);
    spawn("mosquitto", cmd, port, work)
}

fn start_rumqttd(path: &Path, work: &Path) -> Result<Broker> {
    let port = free_port()?;
    let conf = work.join("rumqttd.toml");
    std::fs::write(
        &conf,
        format!(
            "id = 0\n\n[router]\nid = 0\nmax_connections = 10010\nmax_outgoing_packet_count = 200\nmax_segment_size = 104857600\nmax_segment_count = 10\n\n[v4.1]\nname = \"v4-1\"\nlisten = \"127.0.0.1:{port}\"\nnext_connection_delay_ms = 1\n    [v4.1.connections]\n    connection_timeout_ms = 60000\n    max_payload_size = 20480\n    max_inflight_count = 100\n    dynamic_filters = true\n"
        ),
    )?;
    let mut cmd = Command::new(path);
    cmd.arg("-q").arg("-c").arg(&conf);
    spawn("rumqttd", cmd, port, work)
}

/// Resident memory in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds used so far (user + system).
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let Some(after) = stat.rfind(')').and_then(|at| stat.get(at + 2..)) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

fn measure(midge: &Path, broker: &Broker, scenario: &Scenario) -> Result<Sample> {
    let pid = broker.pid();
    let rss_before = rss_kib(pid);
    let cpu_before = cpu_secs(pid);
    let mut cmd = Command::new(midge);
    cmd.args([
        "bench",
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "--json",
    ])
    .args(&scenario.args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("starting midge bench")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut peak = rss_before;
    let mut loaded = 0;
    let mut result = None;
    let limit = Instant::now() + Duration::from_secs(300);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if line.starts_with("idle:") {
                    // Let the broker settle, then read its memory with every
                    // connection open.
                    std::thread::sleep(Duration::from_millis(500));
                    loaded = rss_kib(pid);
                } else if line.starts_with('{') {
                    result = serde_json::from_str::<Value>(&line).ok();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        peak = peak.max(rss_kib(pid));
        if Instant::now() > limit {
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait()?;
    let _ = reader.join();
    let cpu = cpu_secs(pid) - cpu_before;
    let error = (!status.success()).then(|| format!("midge bench exited with {status}"));
    Ok(Sample {
        result,
        peak_rss_kib: peak,
        rss_before_kib: rss_before,
        rss_loaded_kib: if scenario.idle { loaded } else { 0 },
        cpu_secs: cpu,
        error,
    })
}

fn num(value: Option<&Value>, path: &[&str]) -> f64 {
    let mut v = value;
    for key in path {
        v = v.and_then(|v| v.get(key));
    }
    v.and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn render(brokers: &[&str], scenarios: &[Scenario], table: &[Vec<Sample>], seconds: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Command: `cargo xtask broker-bench --seconds {seconds}`; brokers interleaved per scenario; \
         load generator `midge bench` (release) on the same 2-core machine.\n"
    );
    for (scenario, row) in scenarios.iter().zip(table) {
        let _ = writeln!(out, "**{}**\n", scenario.name);
        if scenario.idle {
            let _ = writeln!(
                out,
                "| Broker | RSS before | RSS with 1000 idle | per connection |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|");
            for (broker, s) in brokers.iter().zip(row) {
                let per = (s.rss_loaded_kib.saturating_sub(s.rss_before_kib)) as f64 / 1000.0;
                let _ = writeln!(
                    out,
                    "| {} | {} KiB | {} KiB | {:.2} KiB |{}",
                    broker,
                    s.rss_before_kib,
                    s.rss_loaded_kib,
                    per,
                    s.error
                        .as_deref()
                        .map(|e| format!(" {e}"))
                        .unwrap_or_default()
                );
            }
        } else {
            let _ = writeln!(
                out,
                "| Broker | received/s | ratio to midged | lost | dropped by bench | dup | p50 µs | p99 µs | max µs | peak RSS | broker CPU s | msgs per CPU s |"
            );
            let _ = writeln!(
                out,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            let base = row
                .first()
                .map(|s| num(s.result.as_ref(), &["receive_per_sec"]))
                .unwrap_or(f64::NAN);
            for (broker, s) in brokers.iter().zip(row) {
                let r = s.result.as_ref();
                let received = num(r, &["receive_per_sec"]);
                let total = num(r, &["received"]);
                let _ =
                    writeln!(
                    out,
                    "| {} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {:.2} | {:.0} |{}",
                    broker,
                    received,
                    received / base,
                    num(r, &["lost"]),
                    num(r, &["bench_dropped"]),
                    num(r, &["duplicates"]),
                    num(r, &["latency_us", "p50"]),
                    num(r, &["latency_us", "p99"]),
                    num(r, &["latency_us", "max"]),
                    s.peak_rss_kib as f64 / 1024.0,
                    s.cpu_secs,
                    total / s.cpu_secs.max(1e-9),
                    s.error.as_deref().map(|e| format!(" {e}")).unwrap_or_default()
                );
            }
        }
        let _ = writeln!(out);
    }
    out
}
