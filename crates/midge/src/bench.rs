//! `midge bench`: a load generator for any MQTT 3.1.1 broker.
//!
//! Publishers and subscribers run in one process on a multi-threaded
//! runtime. Every payload starts with the publisher's number, a sequence
//! number and the send time, so the subscribers measure latency and notice
//! loss, duplicates and reordering per publisher. The result is one table on
//! stdout, or one JSON object with `--json` (what `cargo xtask broker-bench`
//! reads).
//!
//! Scenarios: `--pairs N` publishers, each on its own topic, with `--fanout
//! M` subscribers per topic; `--rate R` caps the total publish rate (0 = as
//! fast as the broker takes them: QoS 0 publishers are held back by TCP,
//! QoS 1/2 ones by their inflight window); `--idle N` instead opens N
//! connections that only keep alive, for memory measurements.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::{ArgAction, Args};
use midge_codec::QoS;
use midge_tokio::{Client, ClientError, ConnectOptions, Reconnect};

use crate::exit::{Exit, Failure};

/// Bytes at the start of every payload: publisher, sequence, send time.
const HEADER: usize = 24;

/// Flags of `midge bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// Print help (-h is the host, as in mosquitto).
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,

    /// Broker host name or IP address.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    pub(crate) host: String,

    /// Broker port.
    #[arg(short = 'p', long = "port", default_value_t = 1883)]
    pub(crate) port: u16,

    /// Broker URL (`mqtt://host:port`); overrides -h and -p.
    #[arg(short = 'L', long = "url")]
    pub(crate) url: Option<String>,

    /// Publishers, each on its own topic.
    #[arg(long, default_value_t = 4)]
    pub(crate) pairs: usize,

    /// Subscribers per publisher's topic.
    #[arg(long, default_value_t = 1)]
    pub(crate) fanout: usize,

    /// QoS of publications and subscriptions (0, 1 or 2).
    #[arg(short = 'q', long = "qos", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub(crate) qos: u8,

    /// Payload size in bytes (at least 24: the measurement header).
    #[arg(short = 's', long = "size", default_value_t = 64)]
    pub(crate) size: usize,

    /// Total publish rate in messages per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,

    /// Seconds of publishing (or, with --idle, of holding the connections).
    #[arg(short = 'd', long = "duration", default_value_t = 10)]
    pub(crate) duration: u64,

    /// Seconds to wait for late messages after publishing stops.
    #[arg(long, default_value_t = 5)]
    pub(crate) drain: u64,

    /// Open this many idle connections instead of publishing.
    #[arg(long)]
    pub(crate) idle: Option<usize>,

    /// Topic prefix; each publisher uses `<prefix>/<n>`.
    #[arg(short = 't', long = "topic", default_value = "midge-bench")]
    pub(crate) topic: String,

    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Subscribers connect with a persistent session (clean session off),
    /// so a durable broker records what it hands them (`cargo xtask
    /// broker-bench --durability`).
    #[arg(long)]
    pub(crate) persistent: bool,
}

/// Latency histogram in microseconds: exact below 64 µs, then 64
/// sub-buckets per power of two (under 1.6 % error).
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Histogram {
    const SUB: u32 = 64;

    fn new() -> Self {
        Self {
            buckets: vec![0; 64 * 64],
            count: 0,
            max: 0,
        }
    }

    fn index(micros: u64) -> usize {
        if micros < u64::from(Self::SUB) {
            return usize::try_from(micros).unwrap_or(0);
        }
        let exp = 63 - micros.leading_zeros(); // >= 6
        let sub = (micros >> (exp - 6)) & 63;
        usize::try_from((u64::from(exp) - 5) * 64 + sub).unwrap_or(usize::MAX)
    }

    fn lower_bound(index: usize) -> u64 {
        let index = index as u64;
        if index < 64 {
            return index;
        }
        let exp = index / 64 + 5;
        let sub = index % 64;
        (sub | 64) << (exp - 6)
    }

    fn record(&mut self, micros: u64) {
        let index = Self::index(micros).min(self.buckets.len() - 1);
        if let Some(bucket) = self.buckets.get_mut(index) {
            *bucket += 1;
        }
        self.count += 1;
        self.max = self.max.max(micros);
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // Float to integer: a rank is at most `count`, far below 2^53.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::lower_bound(index).min(self.max);
            }
        }
        self.max
    }
}

/// What one subscriber saw.
struct SubReport {
    histogram: Histogram,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    /// QoS 0 messages the bench's own client dropped because this task
    /// fell behind (not the broker's doing).
    client_dropped: u64,
    last: Option<Instant>,
}

fn qos_of(n: u8) -> QoS {
    match n {
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    }
}

fn fail(exit: Exit, message: impl Into<String>) -> Failure {
    Failure {
        exit,
        message: message.into(),
    }
}

fn client_failure(what: &str, err: &ClientError) -> Failure {
    let exit = match err {
        ClientError::Refused(_) => Exit::Refused,
        ClientError::Timeout => Exit::Timeout,
        _ => Exit::Unreachable,
    };
    fail(exit, format!("{what}: {err}"))
}

/// Runs `midge bench` on its own multi-threaded runtime.
pub(crate) fn run(args: &BenchArgs) -> Result<(), Failure> {
    if args.size < HEADER {
        return Err(fail(
            Exit::Usage,
            format!("--size must be at least {HEADER}"),
        ));
    }
    if args.pairs == 0 || args.fanout == 0 {
        return Err(fail(Exit::Usage, "--pairs and --fanout must be at least 1"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(Exit::Other, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        match args.idle {
            Some(n) => idle(args, n).await,
            None => load(args).await,
        }
    })
}

fn url(args: &BenchArgs) -> String {
    args.url
        .clone()
        .unwrap_or_else(|| format!("mqtt://{}:{}", args.host, args.port))
}

async fn connect(
    args: &BenchArgs,
    id: String,
    clean: bool,
) -> Result<(Client, midge_tokio::Messages), Failure> {
    let options = ConnectOptions::new(&url(args), id)
        .map_err(|e| fail(Exit::Usage, e.to_string()))?
        .with_clean_session(clean)
        .with_keep_alive(60)
        .with_reconnect(Reconnect::disabled())
        .with_inflight_window(100)
        .with_max_queued(10_000)
        .with_max_buffered_messages(10_000);
    Client::connect(options)
        .await
        .map_err(|e| client_failure("connect", &e))
}

/// Opens `n` connections, holds them for `--duration`, closes them.
async fn idle(args: &BenchArgs, n: usize) -> Result<(), Failure> {
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let (client, messages) = connect(
            args,
            format!("midge-bench-{}-idle-{i}", std::process::id()),
            true,
        )
        .await?;
        clients.push((client, messages));
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // The harness samples the broker's memory after this line.
    println!("idle: {n} connected");
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let stale = clients.iter().filter(|(c, _)| !c.is_connected()).count();
    for (client, _) in &clients {
        let _ = client.disconnect().await;
    }
    if args.json {
        println!(
            "{{\"idle_connections\":{n},\"connect_seconds\":{connect_secs:.3},\"lost_connections\":{stale}}}"
        );
    } else {
        println!("{n} idle connections opened in {connect_secs:.2} s; {stale} lost while holding");
    }
    if stale > 0 {
        return Err(fail(
            Exit::Unreachable,
            format!("{stale} idle connections were lost"),
        ));
    }
    Ok(())
}

/// The publish/subscribe load.
async fn load(args: &BenchArgs) -> Result<(), Failure> {
    let qos = qos_of(args.qos);
    let run_id = format!("{}-{}", std::process::id(), fastrand::u32(..));
    let epoch = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let arrived = Arc::new(AtomicU64::new(0));

    // Subscribers first, so nothing published is missed.
    let mut sub_tasks = Vec::new();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    for p in 0..args.pairs {
        for f in 0..args.fanout {
            let (client, mut messages) =
                connect(args, format!("mb-{run_id}-s{p}-{f}"), !args.persistent).await?;
            let topic = format!("{}/{run_id}/{p}", args.topic);
            client
                .subscribe(&topic, qos)
                .await
                .map_err(|e| client_failure("subscribe", &e))?;
            let pairs = args.pairs;
            let mut done = done_rx.clone();
            let arrived = Arc::clone(&arrived);
            sub_tasks.push(tokio::spawn(async move {
                let mut report = SubReport {
                    histogram: Histogram::new(),
                    received: 0,
                    duplicates: 0,
                    out_of_order: 0,
                    client_dropped: 0,
                    last: None,
                };
                let mut next_seq = vec![0u64; pairs];
                loop {
                    let message = tokio::select! {
                        m = messages.recv() => m,
                        _ = done.changed() => None,
                    };
                    let Some(message) = message else { break };
                    let now = Instant::now();
                    let payload = &message.payload[..];
                    let (Some(pb), Some(sb), Some(tb)) =
                        (payload.get(0..8), payload.get(8..16), payload.get(16..24))
                    else {
                        continue;
                    };
                    let publisher = u64::from_be_bytes(pb.try_into().unwrap_or_default());
                    let seq = u64::from_be_bytes(sb.try_into().unwrap_or_default());
                    let sent_at = u64::from_be_bytes(tb.try_into().unwrap_or_default());
                    let now_micros =
                        u64::try_from(now.duration_since(epoch).as_micros()).unwrap_or(u64::MAX);
                    report.histogram.record(now_micros.saturating_sub(sent_at));
                    report.received += 1;
                    arrived.fetch_add(1, Ordering::Relaxed);
                    report.last = Some(now);
                    if let Some(expected) = usize::try_from(publisher)
                        .ok()
                        .and_then(|p| next_seq.get_mut(p))
                    {
                        if seq < *expected {
                            report.duplicates += 1;
                        } else {
                            if seq > *expected {
                                report.out_of_order += 1;
                            }
                            *expected = seq + 1;
                        }
                    }
                }
                report.client_dropped = client.stats().qos0_dropped;
                let _ = client.disconnect().await;
                report
            }));
        }
    }

    // Publishers.
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut pub_tasks = Vec::new();
    for p in 0..args.pairs {
        let (client, _messages) = connect(args, format!("mb-{run_id}-p{p}"), true).await?;
        let topic = format!("{}/{run_id}/{p}", args.topic);
        let size = args.size;
        let interval =
            (args.rate > 0).then(|| Duration::from_secs_f64(args.pairs as f64 / args.rate as f64));
        let sent = Arc::clone(&sent);
        let errors = Arc::clone(&errors);
        pub_tasks.push(tokio::spawn(async move {
            let window = if qos == QoS::AtMostOnce { 1024 } else { 100 };
            let mut pending = std::collections::VecDeque::new();
            let mut seq = 0u64;
            let mut next_at = Instant::now();
            let publisher = p as u64;
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    next_at += interval;
                    tokio::time::sleep_until(next_at.into()).await;
                }
                let mut payload = BytesMut::with_capacity(size);
                payload.put_u64(publisher);
                payload.put_u64(seq);
                let at = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                payload.put_u64(at);
                payload.resize(size, 0x5a);
                let payload: Bytes = payload.freeze();
                loop {
                    match client.publish(&topic, payload.clone(), qos, false) {
                        Ok(delivery) => {
                            pending.push_back(delivery);
                            break;
                        }
                        Err(ClientError::Usage(_)) if !pending.is_empty() => {
                            // The session's queue is full: wait for the oldest.
                            if let Some(oldest) = pending.pop_front() {
                                let _ = oldest.await;
                            }
                        }
                        Err(e) => {
                            if let Ok(mut errors) = errors.lock() {
                                errors.push(format!("publish: {e}"));
                            }
                            return;
                        }
                    }
                }
                seq += 1;
                sent.fetch_add(1, Ordering::Relaxed);
                while pending.len() >= window {
                    if let Some(oldest) = pending.pop_front() {
                        let _ = oldest.await;
                    }
                }
            }
            for delivery in pending {
                let _ = delivery.await;
            }
            let _ = client.disconnect().await;
        }));
    }
    for task in pub_tasks {
        let _ = task.await;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * args.fanout as u64;

    // Let late messages arrive (QoS 1/2 should all come), then stop the
    // subscribers.
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain);
    while Instant::now() < drain_deadline && arrived.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = done_tx.send(true);
    let mut total = Histogram::new();
    let (mut received, mut duplicates, mut out_of_order, mut client_dropped) = (0, 0, 0, 0);
    let mut last: Option<Instant> = None;
    for task in sub_tasks {
        if let Ok(report) = task.await {
            total.merge(&report.histogram);
            received += report.received;
            duplicates += report.duplicates;
            out_of_order += report.out_of_order;
            client_dropped += report.client_dropped;
            last = match (last, report.last) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let receive_secs = last.map_or(publish_secs, |l| l.duration_since(started).as_secs_f64());
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    // Lost on the way: neither received nor dropped by the bench itself.
    let lost = expected
        .saturating_sub(received - duplicates.min(received))
        .saturating_sub(client_dropped);
    let report = Report {
        qos: args.qos,
        pairs: args.pairs,
        fanout: args.fanout,
        size: args.size,
        rate: args.rate,
        sent,
        received,
        lost,
        client_dropped,
        duplicates,
        out_of_order,
        publish_per_sec: sent as f64 / publish_secs.max(1e-9),
        receive_per_sec: received as f64 / receive_secs.max(1e-9),
        p50: total.percentile(50.0),
        p99: total.percentile(99.0),
        p999: total.percentile(99.9),
        max: total.max,
        errors: errors.len(),
    };
    report.print(args.json);
    if let Some(first) = errors.first() {
        return Err(fail(Exit::Unreachable, first.clone()));
    }
    Ok(())
}

struct Report {
    qos: u8,
    pairs: usize,
    fanout: usize,
    size: usize,
    rate: u64,
    sent: u64,
    received: u64,
    lost: u64,
    client_dropped: u64,
    duplicates: u64,
    out_of_order: u64,
    publish_per_sec: f64,
    receive_per_sec: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    errors: usize,
}

impl Report {
    fn print(&self, json: bool) {
        if json {
            println!(
                "{{\"qos\":{},\"pairs\":{},\"fanout\":{},\"size\":{},\"rate\":{},\"sent\":{},\"received\":{},\"lost\":{},\"bench_dropped\":{},\"duplicates\":{},\"out_of_order\":{},\"publish_per_sec\":{:.0},\"receive_per_sec\":{:.0},\"latency_us\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{}}},\"errors\":{}}}",
                self.qos, self.pairs, self.fanout, self.size, self.rate, self.sent, self.received,
                self.lost, self.client_dropped, self.duplicates, self.out_of_order, self.publish_per_sec,
                self.receive_per_sec, self.p50, self.p99, self.p999, self.max, self.errors
            );
        } else {
            println!(
                "qos {} | {} publishers x {} subscribers each | {} B payload | rate {}",
                self.qos,
                self.pairs,
                self.fanout,
                self.size,
                if self.rate == 0 {
                    "max".to_owned()
                } else {
                    format!("{}/s", self.rate)
                }
            );
            println!(
                "sent {} ({:.0}/s), received {} ({:.0}/s), lost {}, duplicates {}, out of order {}",
                self.sent,
                self.publish_per_sec,
                self.received,
                self.receive_per_sec,
                self.lost,
                self.duplicates,
                self.out_of_order
            );
            println!(
                "latency µs: p50 {} p99 {} p99.9 {} max {}",
                self.p50, self.p99, self.p999, self.max
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_within_bucket_error() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.percentile(50.0);
        assert!((4_900..=5_000).contains(&p50), "{p50}");
        let p99 = h.percentile(99.0);
        assert!((9_750..=9_900).contains(&p99), "{p99}");
        assert_eq!(h.max, 10_000);
        // The top percentile is the last bucket's lower bound.
        let p100 = h.percentile(100.0);
        assert!((9_850..=10_000).contains(&p100), "{p100}");
    }

    #[test]
    fn histogram_buckets_are_monotonic() {
        let mut previous = 0;
        for v in (0..1_000_000u64).step_by(997) {
            let index = Histogram::index(v);
            assert!(index >= previous);
            assert!(Histogram::lower_bound(index) <= v);
            previous = index;
        }
    }
}
