//! One registry of the server's counters, read as a [`MetricsSnapshot`] and
//! rendered as Prometheus text (format 0.0.4) or as `$SYS` topics.
//!
//! Connections count into atomics ([`ServerStats`]); each router shard keeps
//! its own [`RouterStats`] and answers a [`Control::Report`] request with a
//! [`ShardReport`] when a snapshot is taken, so nothing on the message path
//! takes a lock or waits for a reader. Listener counts are atomics too, one
//! set per listening address.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_channel::Sender;
use midge_broker::RouterStats;
use midge_codec::Publish;
use midge_runtime::{Duration, Instant, Runtime};

use crate::stats::Shared;
use crate::ServerStats;

/// What the metrics side asks of a router shard, on a channel of its own.
#[derive(Debug)]
pub(crate) enum Control {
    /// Answer with the shard's [`ShardReport`] (a `bounded(1)` reply).
    Report(Sender<ShardReport>),
    /// Route a message the broker itself publishes (`$SYS`).
    Publish(Publish),
}

/// One router shard's counters and gauges at the moment it was asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardReport {
    /// The shard's number.
    pub shard: u32,
    /// The shard router's own counters (refusals, denials, drops).
    pub router: RouterStats,
    /// Sessions the shard owns, online and offline.
    pub sessions: u64,
    /// Clients connected to the shard (CONNECT accepted).
    pub clients_connected: u64,
    /// Subscriptions of the sessions the shard owns.
    pub subscriptions: u64,
    /// Retained messages the shard stores.
    pub retained: u64,
    /// Publishing connections paused by back-pressure.
    pub paused_publishers: u64,
    /// Inputs from connections waiting in the shard's inbox.
    pub inbox_depth: u64,
    /// Messages from other shards waiting in the shard's inbox.
    pub peer_inbox_depth: u64,
    /// Actions waiting in the mailboxes of the shard's connections.
    pub mailbox_depth: u64,
}

/// One listening address's connection counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerReport {
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// Connections from this listener open now.
    pub connections_open: u64,
    /// Connections this listener accepted since start.
    pub connections_total: u64,
}

/// The atomics of one listener.
#[derive(Debug)]
pub(crate) struct ListenerCounts {
    addr: SocketAddr,
    pub(crate) open: AtomicU64,
    pub(crate) total: AtomicU64,
}

/// The runtime's clock, as the registry reads it.
type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

/// The metrics side of the state every task shares.
#[derive(Default)]
pub(crate) struct Registry {
    /// One control channel per shard, set when the server runs.
    control: OnceLock<Vec<Sender<Control>>>,
    /// When the server started running, and its clock.
    started: OnceLock<(Instant, Clock)>,
    /// Taken once per accepted socket and per snapshot, never per message.
    listeners: Mutex<Vec<Arc<ListenerCounts>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("shards", &self.control.get().map_or(0, Vec::len))
            .field("started", &self.started.get().map(|(at, _)| *at))
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Records the shards' control channels, the runtime's clock and the
    /// start time; the first call wins.
    pub(crate) fn start<R: Runtime>(&self, control: Vec<Sender<Control>>, rt: &R) {
        let _ = self.control.set(control);
        let clock = rt.clone();
        let _ = self.started.set((rt.now(), Box::new(move || clock.now())));
    }

    /// The counts of the listener bound to `addr`, made on first use.
    pub(crate) fn listener(&self, addr: SocketAddr) -> Arc<ListenerCounts> {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = listeners.iter().find(|l| l.addr == addr) {
            return Arc::clone(found);
        }
        let counts = Arc::new(ListenerCounts {
            addr,
            open: AtomicU64::new(0),
            total: AtomicU64::new(0),
        });
        listeners.push(Arc::clone(&counts));
        counts
    }

    /// Hands a broker-made message to shard 0, which routes it (the
    /// retained copy reaches the shard owning the topic from there).
    /// Returns false when the shards are not running.
    pub(crate) fn publish(&self, publish: Publish) -> bool {
        self.control
            .get()
            .and_then(|c| c.first())
            .is_some_and(|tx| tx.try_send(Control::Publish(publish)).is_ok())
    }

    fn listener_reports(&self) -> Vec<ListenerReport> {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners
            .iter()
            .map(|l| ListenerReport {
                addr: l.addr,
                connections_open: l.open.load(Ordering::Relaxed),
                connections_total: l.total.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// Takes a snapshot: the connection counters at once, then each shard's
/// report (a shard answers once it has handled a batch of the inputs its
/// connections had queued). A shard that has stopped is left out.
pub(crate) async fn collect(shared: &Shared) -> MetricsSnapshot {
    let server = shared.stats.snapshot();
    let mut replies = Vec::new();
    for tx in shared.metrics.control.get().into_iter().flatten() {
        let (reply_tx, reply_rx) = async_channel::bounded(1);
        if tx.try_send(Control::Report(reply_tx)).is_ok() {
            replies.push(reply_rx);
        }
    }
    let mut shards = Vec::with_capacity(replies.len());
    for reply in replies {
        if let Ok(report) = reply.recv().await {
            shards.push(report);
        }
    }
    let uptime = shared
        .metrics
        .started
        .get()
        .map_or(Duration::ZERO, |(start, clock)| {
            clock().saturating_duration_since(*start)
        });
    MetricsSnapshot {
        uptime,
        server,
        shards,
        listeners: shared.metrics.listener_reports(),
    }
}

/// Why a message was dropped: the label of
/// `midge_messages_dropped_total` and the last level of
/// `$SYS/broker/messages/dropped/<reason>`.
pub const DROP_REASONS: [&str; 8] = [
    "acl_denied",
    "sys_topic",
    "offline_queue_full",
    "offline_queue_evicted",
    "offline_qos0",
    "share_group_lost",
    "clean_session",
    "subscriber_queue",
];

/// Everything the server counts, at one moment; from
/// [`ServerHandle::metrics`](crate::ServerHandle::metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Time since the server started running.
    pub uptime: Duration,
    /// The connections' counters.
    pub server: ServerStats,
    /// One report per running shard.
    pub shards: Vec<ShardReport>,
    /// One report per listening address.
    pub listeners: Vec<ListenerReport>,
}

impl MetricsSnapshot {
    fn sum(&self, field: impl Fn(&ShardReport) -> u64) -> u64 {
        self.shards.iter().map(field).fold(0, u64::saturating_add)
    }

    /// Clients connected now (CONNECT accepted), all shards.
    #[must_use]
    pub fn clients_connected(&self) -> u64 {
        self.sum(|s| s.clients_connected)
    }

    /// Sessions kept now, online and offline, all shards.
    #[must_use]
    pub fn sessions(&self) -> u64 {
        self.sum(|s| s.sessions)
    }

    /// Subscriptions held now, all shards.
    #[must_use]
    pub fn subscriptions(&self) -> u64 {
        self.sum(|s| s.subscriptions)
    }

    /// Retained messages stored now, all shards.
    #[must_use]
    pub fn retained(&self) -> u64 {
        self.sum(|s| s.retained)
    }

    /// Messages dropped for `reason`, one of [`DROP_REASONS`] (0 for any
    /// other string).
    #[must_use]
    pub fn dropped(&self, reason: &str) -> u64 {
        match reason {
            "acl_denied" => self.sum(|s| s.router.denied_publishes),
            "sys_topic" => self.sum(|s| s.router.sys_publishes_dropped),
            "offline_queue_full" => self.sum(|s| s.router.offline_dropped_newest),
            "offline_queue_evicted" => self.sum(|s| s.router.offline_dropped_oldest),
            "offline_qos0" => self.sum(|s| s.router.offline_dropped_qos0),
            "share_group_lost" => self.sum(|s| s.router.shared_lost),
            "clean_session" => self.sum(|s| s.router.clean_session_discarded),
            "subscriber_queue" => self.server.messages_dropped,
            _ => 0,
        }
    }

    /// The `$SYS/broker/...` topics and their payloads (decimal text, as
    /// Mosquitto publishes them), in a fixed order.
    #[must_use]
    pub fn sys_topics(&self) -> Vec<(String, String)> {
        let s = &self.server;
        let connected = self.clients_connected();
        let total = self.sessions();
        let mut topics = vec![
            ("version", format!("midge {}", env!("CARGO_PKG_VERSION"))),
            ("uptime", format!("{} seconds", self.uptime.as_secs())),
            ("clients/connected", connected.to_string()),
            (
                "clients/disconnected",
                total.saturating_sub(connected).to_string(),
            ),
            ("clients/total", total.to_string()),
            ("messages/received", s.messages_received.to_string()),
            ("messages/sent", s.messages_sent.to_string()),
            ("bytes/received", s.bytes_received.to_string()),
            ("bytes/sent", s.bytes_sent.to_string()),
            ("subscriptions/count", self.subscriptions().to_string()),
            ("retained messages/count", self.retained().to_string()),
            ("store/commits", s.store_commits.to_string()),
            ("store/recoveries", s.store_recoveries.to_string()),
        ]
        .into_iter()
        .map(|(t, v)| (format!("$SYS/broker/{t}"), v))
        .collect::<Vec<_>>();
        for reason in DROP_REASONS {
            topics.push((
                format!("$SYS/broker/messages/dropped/{reason}"),
                self.dropped(reason).to_string(),
            ));
        }
        topics
    }

    /// The snapshot in the Prometheus text exposition format 0.0.4.
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let s = &self.server;
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        };
        one(
            "midge_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            self.uptime.as_secs(),
        );
        one(
            "midge_connections_open",
            "gauge",
            "TCP connections open now, CONNECT received or not.",
            s.connections_open,
        );
        one(
            "midge_connections_accepted_total",
            "counter",
            "TCP connections accepted.",
            s.connections_total,
        );
        one(
            "midge_connections_rejected_total",
            "counter",
            "Sockets closed at once because max_connections were open.",
            s.connections_rejected,
        );
        one(
            "midge_clients_connected",
            "gauge",
            "Clients whose CONNECT was accepted, connected now.",
            self.clients_connected(),
        );
        one(
            "midge_sessions",
            "gauge",
            "Sessions kept, online and offline.",
            self.sessions(),
        );
        one(
            "midge_subscriptions",
            "gauge",
            "Subscriptions held by all sessions.",
            self.subscriptions(),
        );
        one(
            "midge_retained_messages",
            "gauge",
            "Retained messages stored.",
            self.retained(),
        );
        one(
            "midge_messages_received_total",
            "counter",
            "Application messages received from clients.",
            s.messages_received,
        );
        one(
            "midge_messages_sent_total",
            "counter",
            "Application messages handed to sessions for delivery.",
            s.messages_sent,
        );
        one(
            "midge_bytes_received_total",
            "counter",
            "Bytes read from clients.",
            s.bytes_received,
        );
        one(
            "midge_bytes_sent_total",
            "counter",
            "Bytes written to clients.",
            s.bytes_sent,
        );
        one(
            "midge_protocol_errors_total",
            "counter",
            "Connections closed because their client broke the protocol.",
            s.protocol_errors,
        );
        one(
            "midge_wills_published_total",
            "counter",
            "Wills published.",
            s.wills_published,
        );
        one(
            "midge_publisher_pauses_total",
            "counter",
            "Times a publisher stopped being read because a subscriber was congested.",
            s.publisher_pauses,
        );
        one(
            "midge_store_commits_total",
            "counter",
            "Store commits made by the router shards, one sync each.",
            s.store_commits,
        );
        one(
            "midge_store_recoveries_total",
            "counter",
            "Damaged stores moved aside and salvaged at start-up.",
            s.store_recoveries,
        );
        one(
            "midge_store_failures_total",
            "counter",
            "Store calls that failed.",
            self.sum(|r| r.router.store_failures),
        );

        head(
            &mut out,
            "midge_messages_dropped_total",
            "counter",
            "Messages dropped, by reason.",
        );
        for reason in DROP_REASONS {
            let value = self.dropped(reason);
            let _ = writeln!(
                out,
                "midge_messages_dropped_total{{reason=\"{reason}\"}} {value}"
            );
        }
        head(
            &mut out,
            "midge_connects_refused_total",
            "counter",
            "CONNECTs refused, by reason.",
        );
        for (reason, value) in [
            ("not_authorized", self.sum(|r| r.router.denied_connections)),
            ("limit", self.sum(|r| r.router.refused_connections)),
            ("wrong_shard", self.sum(|r| r.router.wrong_shard)),
        ] {
            let _ = writeln!(
                out,
                "midge_connects_refused_total{{reason=\"{reason}\"}} {value}"
            );
        }
        head(
            &mut out,
            "midge_subscriptions_refused_total",
            "counter",
            "Subscription filters refused, by reason.",
        );
        for (reason, value) in [
            (
                "not_authorized",
                self.sum(|r| r.router.denied_subscriptions),
            ),
            ("limit", self.sum(|r| r.router.refused_subscriptions)),
        ] {
            let _ = writeln!(
                out,
                "midge_subscriptions_refused_total{{reason=\"{reason}\"}} {value}"
            );
        }

        let listeners = [
            Family {
                name: "midge_listener_connections_open",
                kind: "gauge",
                help: "Connections open now, by listener.",
                value: |l: &ListenerReport| l.connections_open,
            },
            Family {
                name: "midge_listener_connections_total",
                kind: "counter",
                help: "Connections accepted, by listener.",
                value: |l: &ListenerReport| l.connections_total,
            },
        ];
        for f in listeners {
            head(&mut out, f.name, f.kind, f.help);
            for l in &self.listeners {
                let _ = writeln!(
                    out,
                    "{}{{listener=\"{}\"}} {}",
                    f.name,
                    l.addr,
                    (f.value)(l)
                );
            }
        }

        let shards = [
            Family {
                name: "midge_shard_inbox_depth",
                kind: "gauge",
                help: "Inputs from connections waiting in a router shard's inbox.",
                value: |r: &ShardReport| r.inbox_depth,
            },
            Family {
                name: "midge_shard_peer_inbox_depth",
                kind: "gauge",
                help: "Messages from other shards waiting in a router shard's inbox.",
                value: |r: &ShardReport| r.peer_inbox_depth,
            },
            Family {
                name: "midge_shard_mailbox_depth",
                kind: "gauge",
                help: "Actions waiting in the mailboxes of a shard's connections.",
                value: |r: &ShardReport| r.mailbox_depth,
            },
            Family {
                name: "midge_shard_paused_publishers",
                kind: "gauge",
                help: "Publishers a shard holds paused by back-pressure.",
                value: |r: &ShardReport| r.paused_publishers,
            },
        ];
        for f in shards {
            head(&mut out, f.name, f.kind, f.help);
            for r in &self.shards {
                let _ = writeln!(out, "{}{{shard=\"{}\"}} {}", f.name, r.shard, (f.value)(r));
            }
        }
        out
    }
}

/// A metric family with one sample per listener or shard.
struct Family<T> {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&T) -> u64,
}

/// The `# HELP` and `# TYPE` lines of one metric family.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> MetricsSnapshot {
        let server = ServerStats {
            messages_received: 7,
            messages_dropped: 2,
            ..ServerStats::default()
        };
        let mut a = ShardReport {
            shard: 0,
            clients_connected: 2,
            sessions: 3,
            subscriptions: 4,
            retained: 1,
            mailbox_depth: 5,
            ..ShardReport::default()
        };
        a.router.denied_publishes = 1;
        let mut b = ShardReport {
            shard: 1,
            clients_connected: 1,
            sessions: 1,
            ..ShardReport::default()
        };
        b.router.denied_publishes = 2;
        b.router.offline_dropped_qos0 = 3;
        MetricsSnapshot {
            uptime: Duration::from_secs(42),
            server,
            shards: vec![a, b],
            listeners: vec![ListenerReport {
                addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
                connections_open: 3,
                connections_total: 9,
            }],
        }
    }

    #[test]
    fn shards_are_summed_and_reasons_mapped() {
        let s = snapshot();
        assert_eq!(s.clients_connected(), 3);
        assert_eq!(s.sessions(), 4);
        assert_eq!(s.dropped("acl_denied"), 3);
        assert_eq!(s.dropped("offline_qos0"), 3);
        assert_eq!(s.dropped("subscriber_queue"), 2);
        assert_eq!(s.dropped("no such reason"), 0);
    }

    #[test]
    fn prometheus_text_has_help_type_and_labelled_samples() {
        let text = snapshot().to_prometheus();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"# TYPE midge_messages_received_total counter"));
        assert!(lines.contains(&"midge_messages_received_total 7"));
        assert!(lines.contains(&"midge_uptime_seconds 42"));
        assert!(lines.contains(&"midge_messages_dropped_total{reason=\"acl_denied\"} 3"));
        assert!(lines.contains(&"midge_listener_connections_total{listener=\"127.0.0.1:1883\"} 9"));
        assert!(lines.contains(&"midge_shard_mailbox_depth{shard=\"0\"} 5"));
        // Every sample belongs to a family announced just before it.
        let mut family = "";
        for line in &lines {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or("");
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} outside {family}");
            }
        }
    }

    #[test]
    fn sys_topics_follow_mosquitto_names() {
        let topics = snapshot().sys_topics();
        let get = |t: &str| {
            topics
                .iter()
                .find(|(topic, _)| topic == t)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("$SYS/broker/uptime"), Some("42 seconds"));
        assert_eq!(get("$SYS/broker/clients/connected"), Some("3"));
        assert_eq!(get("$SYS/broker/clients/disconnected"), Some("1"));
        assert_eq!(get("$SYS/broker/clients/total"), Some("4"));
        assert_eq!(get("$SYS/broker/retained messages/count"), Some("1"));
        assert_eq!(get("$SYS/broker/messages/dropped/acl_denied"), Some("3"));
        assert_eq!(get("$SYS/broker/store/recoveries"), Some("0"));
        assert_eq!(get("$SYS/broker/store/commits"), Some("0"));
        assert_eq!(topics.len(), 13 + DROP_REASONS.len());
    }
}
