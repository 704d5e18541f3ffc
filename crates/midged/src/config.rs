//! The configuration file (TOML) and how it combines with the command line.
//!
//! Every key is optional; a missing key keeps the default of the core that
//! owns the setting (`midge_broker::RouterConfig`,
//! `midge_broker::ServerConfig`). Unknown keys and bad values are refused
//! with the file name, line, column and key.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use midge_broker::{OverflowPolicy, RouterConfig, ServerConfig, SlowSubscriberPolicy};
use midge_tokio::ServerOptions;
use serde::{Deserialize, Deserializer};

use crate::store::OfflineShare;
use crate::units::{Expiry, HumaneDuration, Size};

/// The port MQTT brokers listen on by default.
pub(crate) const DEFAULT_PORT: u16 = 1883;

/// The listener used when neither the file nor the command line names one.
pub(crate) const DEFAULT_LISTENER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);

/// The whole file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Addresses to listen on.
    #[serde(default)]
    pub(crate) listeners: Option<Vec<SocketAddr>>,
    /// Log level used when neither `RUST_LOG` nor `-v`/`-q` says otherwise.
    #[serde(default)]
    pub(crate) log_level: Option<LogLevel>,
    /// Router shards; 0 means one per core.
    #[serde(default)]
    pub(crate) shards: Option<usize>,
    /// What to do about subscribers that read more slowly than publishers
    /// write.
    #[serde(default)]
    pub(crate) slow_subscriber: Option<SlowSubscriber>,
    /// Whether clients may publish to `$SYS` topics.
    #[serde(default)]
    pub(crate) allow_client_sys_publish: Option<bool>,
    /// `"none"` or `"durable"` (the default): where sessions, queues and
    /// retained messages live.
    #[serde(default)]
    pub(crate) persistence: Option<crate::store::Mode>,
    /// The directory of the durable store (default `./midge-data`).
    #[serde(default)]
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// `"always"`, `"batch"` (the default) or `"never"`.
    #[serde(default)]
    pub(crate) fsync: Option<crate::store::Fsync>,
    /// The bound of a batched commit (default 2 ms).
    #[serde(default, deserialize_with = "positive_duration")]
    pub(crate) fsync_interval: Option<HumaneDuration>,
    /// Queue entries of an offline session kept in memory when durable
    /// (the rest is read back from disk); default 8.
    #[serde(default, deserialize_with = "positive")]
    pub(crate) offline_memory_messages: Option<usize>,
    /// Table `[limits]`.
    #[serde(default)]
    pub(crate) limits: Limits,
    /// Table `[session]`.
    #[serde(default)]
    pub(crate) session: Session,
    /// Table `[auth]`.
    #[serde(default)]
    pub(crate) auth: crate::auth::AuthConfig,
    /// The `[sn]` table: the MQTT-SN gateway.
    #[serde(default)]
    pub(crate) sn: crate::sn::SnFileConfig,
    /// Table `[metrics]`.
    #[serde(default)]
    pub(crate) metrics: crate::metrics::MetricsConfig,
    /// Table `[sys]`.
    #[serde(default)]
    pub(crate) sys: crate::metrics::SysConfig,
    /// Table `[tls]`: TLS listeners and the certificate they (and wss
    /// listeners) use.
    #[serde(default)]
    pub(crate) tls: crate::transport::TlsFileConfig,
    /// Table `[websocket]`: ws and wss listeners.
    #[serde(default)]
    pub(crate) websocket: Option<crate::transport::WebSocketFileConfig>,
}

/// Table `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    #[serde(default, deserialize_with = "positive")]
    pub(crate) max_connections: Option<usize>,
    #[serde(default, deserialize_with = "positive")]
    pub(crate) max_sessions: Option<usize>,
    #[serde(default, deserialize_with = "packet_size")]
    pub(crate) max_packet_size: Option<Size>,
    #[serde(default, deserialize_with = "inflight")]
    pub(crate) max_inflight: Option<usize>,
    #[serde(default)]
    pub(crate) max_queued_messages: Option<usize>,
    #[serde(default)]
    pub(crate) max_queued_bytes: Option<Size>,
    #[serde(default)]
    pub(crate) queue_overflow: Option<Overflow>,
    #[serde(default, deserialize_with = "positive_size")]
    pub(crate) max_write_buffer: Option<Size>,
    #[serde(default)]
    pub(crate) max_offline_messages: Option<usize>,
    #[serde(default)]
    pub(crate) max_offline_bytes: Option<Size>,
    #[serde(default)]
    pub(crate) offline_overflow: Option<Overflow>,
    #[serde(default)]
    pub(crate) queue_qos0_offline: Option<bool>,
    #[serde(default)]
    pub(crate) max_subscriptions_per_client: Option<usize>,
    #[serde(default)]
    pub(crate) max_retained_messages: Option<usize>,
    #[serde(default)]
    pub(crate) max_retained_bytes: Option<Size>,
    #[serde(default, deserialize_with = "client_id_len")]
    pub(crate) max_client_id_len: Option<usize>,
}

/// Table `[session]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Session {
    #[serde(default)]
    pub(crate) expiry: Option<Expiry>,
    #[serde(default, deserialize_with = "keep_alive_percent")]
    pub(crate) keep_alive_percent: Option<u16>,
    #[serde(default, deserialize_with = "positive_duration")]
    pub(crate) connect_timeout: Option<HumaneDuration>,
    #[serde(default)]
    pub(crate) allow_zero_length_client_id: Option<bool>,
    #[serde(default)]
    pub(crate) generated_client_id_prefix: Option<String>,
}

/// A log level name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// One line per connection and the start-up lines (the default).
    Info,
    /// More detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub(crate) fn directive(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// `slow_subscriber` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SlowSubscriber {
    /// Pause the publishers that feed a congested subscriber.
    BackPressure,
    /// Never pause; drop at the subscriber's limits.
    Drop,
}

/// Overflow policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Overflow {
    /// Refuse the new message.
    DropNewest,
    /// Evict the oldest queued messages.
    DropOldest,
}

impl From<Overflow> for OverflowPolicy {
    fn from(value: Overflow) -> Self {
        match value {
            Overflow::DropNewest => Self::DropNewest,
            Overflow::DropOldest => Self::DropOldest,
        }
    }
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let value = usize::deserialize(d)?;
    if value == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(Some(value))
}

fn inflight<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let value = usize::deserialize(d)?;
    if !(1..=65_535).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value} is out of range: the inflight window is 1 to 65535 messages"
        )));
    }
    Ok(Some(value))
}

fn client_id_len<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let value = usize::deserialize(d)?;
    if !(1..=65_535).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value} is out of range: a client id is 1 to 65535 bytes"
        )));
    }
    Ok(Some(value))
}

fn packet_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Size>, D::Error> {
    let value = Size::deserialize(d)?;
    // The smallest useful packet is a CONNECT; the largest is what the
    // remaining-length field can say, plus the fixed header.
    let max = midge_codec::MAX_PACKET_SIZE;
    if value.0 < 64 || value.0 > max {
        return Err(serde::de::Error::custom(format!(
            "{} bytes is out of range: a packet size limit is 64 to {max} bytes",
            value.0
        )));
    }
    Ok(Some(value))
}

fn positive_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Size>, D::Error> {
    let value = Size::deserialize(d)?;
    if value.0 == 0 {
        return Err(serde::de::Error::custom("must be at least 1 byte"));
    }
    Ok(Some(value))
}

fn keep_alive_percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let value = u16::deserialize(d)?;
    if value < 100 {
        return Err(serde::de::Error::custom(format!(
            "{value} is too small: a client may be silent for its whole keep alive, so use 100 or more (150 is what the specification asks)"
        )));
    }
    Ok(Some(value))
}

fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HumaneDuration>, D::Error> {
    let value = HumaneDuration::deserialize(d)?;
    if value.0 == Duration::ZERO {
        return Err(serde::de::Error::custom("must be longer than zero"));
    }
    Ok(Some(value))
}

/// Why a configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The file, as given.
    pub(crate) file: String,
    /// 1-based line and column, when known.
    pub(crate) position: Option<(usize, usize)>,
    /// The dotted key the error is about, when known (`limits.max_inflight`).
    pub(crate) key: Option<String>,
    /// What is wrong.
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = before.len().saturating_sub(line_start) + 1;
    (line, column)
}

/// Parses the text of a configuration file; `file` names it in errors.
pub(crate) fn parse(file: &str, text: &str) -> Result<FileConfig, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let position = inner.span().map(|span| line_and_column(text, span.start));
        let raw = inner.message().trim_end();
        // serde says "unknown field `x`, expected one of …"; the key is
        // already named, and a TOML user thinks in keys.
        let message = match raw.strip_prefix("unknown field `") {
            Some(rest) => match rest.split_once("`, ") {
                Some((_, expected)) => format!("unknown key, {expected}"),
                None => String::from("unknown key"),
            },
            None => raw.lines().map(str::trim).collect::<Vec<_>>().join("; "),
        };
        // The path of an unknown key is the table holding it, which the
        // message then names; "." is the root.
        let key = (path != "." && !path.is_empty()).then_some(path);
        ConfigError {
            file: file.to_owned(),
            position,
            key,
            message,
        }
    })
}

/// Reads and parses a configuration file.
pub(crate) fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        file: file.clone(),
        position: None,
        key: None,
        message: format!("cannot read: {err}"),
    })?;
    parse(&file, &text)
}

/// Everything the broker runs with, after the file and the flags are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Addresses to listen on.
    pub(crate) listeners: Vec<SocketAddr>,
    /// Log level when `RUST_LOG` is unset and no `-v`/`-q` is given.
    pub(crate) log_level: LogLevel,
    /// Router shards; 0 means one per core.
    pub(crate) shards: usize,
    /// Connections at once, all listeners together.
    pub(crate) max_connections: usize,
    /// Unsent bytes buffered per connection before the driver stops taking
    /// more from its session.
    pub(crate) max_write_buffer: usize,
    /// The router's limits and switches.
    pub(crate) router: RouterConfig,
    /// Each connection's limits and switches.
    pub(crate) session: ServerConfig,
    /// Password file, ACL file and anonymous access.
    pub(crate) auth: crate::auth::AuthConfig,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// How often `$SYS/broker/...` is published; zero: never.
    pub(crate) sys_interval: Duration,
    /// Where the broker's state lives and how it is committed.
    pub(crate) persistence: crate::store::Persistence,
}

/// What the command line contributes to [`Settings`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    /// `--port`.
    pub(crate) port: Option<u16>,
    /// `--bind`, each an address with or without a port.
    pub(crate) bind: Vec<BindAddr>,
}

/// A `--bind` value: an IP address, optionally with a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindAddr {
    /// An address without a port: `--port`, or 1883, applies.
    Ip(IpAddr),
    /// An address with its own port.
    Socket(SocketAddr),
}

impl std::str::FromStr for BindAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(socket) = s.parse::<SocketAddr>() {
            return Ok(Self::Socket(socket));
        }
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        bare.parse::<IpAddr>().map(Self::Ip).map_err(|_| {
            format!(
                "{s:?} is not an IP address (examples: 0.0.0.0, ::, 127.0.0.1:1884, [::1]:1884)"
            )
        })
    }
}

impl Settings {
    /// The server's options.
    pub(crate) fn server_options(&self) -> ServerOptions {
        ServerOptions {
            listeners: self.listeners.clone(),
            router: self.router.clone(),
            session: self.session.clone(),
            shards: self.shards,
            max_connections: self.max_connections,
            max_write_buffer: self.max_write_buffer,
            sys_interval: self.sys_interval,
            durability: self.persistence.durability(),
            ..ServerOptions::default()
        }
        .with_offline_share(&self.persistence)
    }

    /// Merges the file (or its absence) with the command line: the command
    /// line wins.
    pub(crate) fn resolve(file: FileConfig, flags: &Overrides) -> Self {
        let mut router = RouterConfig::default();
        let mut session = ServerConfig::default();
        let limits = file.limits;
        let server_defaults = ServerOptions::default();
        let mut max_connections = server_defaults.max_connections;
        if let Some(v) = limits.max_connections {
            max_connections = v;
            router.max_connections = v;
        }
        if let Some(v) = limits.max_sessions {
            router.max_sessions = v;
        }
        if let Some(v) = limits.max_packet_size {
            session.max_packet_size = v.0;
        }
        if let Some(v) = limits.max_inflight {
            session.max_inflight = v;
        }
        if let Some(v) = limits.max_queued_messages {
            session.max_queued_messages = v;
        }
        if let Some(v) = limits.max_queued_bytes {
            session.max_queued_bytes = v.0;
        }
        if let Some(v) = limits.queue_overflow {
            session.overflow_policy = v.into();
        }
        if let Some(v) = limits.max_offline_messages {
            router.max_offline_messages = v;
        }
        if let Some(v) = limits.max_offline_bytes {
            router.max_offline_bytes = v.0;
        }
        if let Some(v) = limits.offline_overflow {
            router.offline_overflow = v.into();
        }
        if let Some(v) = limits.queue_qos0_offline {
            router.queue_qos0_offline = v;
        }
        if let Some(v) = limits.max_subscriptions_per_client {
            router.max_subscriptions_per_client = v;
            session.max_subscriptions_per_client = v;
        }
        if let Some(v) = limits.max_retained_messages {
            router.max_retained_messages = v;
        }
        if let Some(v) = limits.max_retained_bytes {
            router.max_retained_bytes = v.0;
        }
        if let Some(v) = limits.max_client_id_len {
            session.max_client_id_len = v;
        }
        let sess = file.session;
        if let Some(v) = sess.expiry {
            router.session_expiry = v.0;
        }
        if let Some(v) = sess.keep_alive_percent {
            session.keep_alive_percent = v;
        }
        if let Some(v) = sess.connect_timeout {
            session.connect_timeout = v.0;
        }
        if let Some(v) = sess.allow_zero_length_client_id {
            session.allow_zero_length_client_id = v;
        }
        if let Some(v) = sess.generated_client_id_prefix {
            session.client_id_prefix = v;
        }
        if let Some(v) = file.slow_subscriber {
            router.slow_subscriber = match v {
                SlowSubscriber::BackPressure => SlowSubscriberPolicy::BackPressure,
                SlowSubscriber::Drop => SlowSubscriberPolicy::Drop,
            };
        }
        if let Some(v) = file.allow_client_sys_publish {
            router.allow_client_sys_publish = v;
        }

        let listeners = if flags.bind.is_empty() {
            let from_file = file.listeners.unwrap_or_else(|| vec![DEFAULT_LISTENER]);
            from_file
                .into_iter()
                .map(|addr| SocketAddr::new(addr.ip(), flags.port.unwrap_or(addr.port())))
                .collect()
        } else {
            flags
                .bind
                .iter()
                .map(|bind| match *bind {
                    BindAddr::Socket(addr) => addr,
                    BindAddr::Ip(ip) => SocketAddr::new(ip, flags.port.unwrap_or(DEFAULT_PORT)),
                })
                .collect()
        };

        Self {
            listeners,
            log_level: file.log_level.unwrap_or(LogLevel::Info),
            shards: file.shards.unwrap_or(0),
            max_connections,
            max_write_buffer: limits
                .max_write_buffer
                .map_or(server_defaults.max_write_buffer, |s| s.0),
            router,
            session,
            auth: file.auth,
            metrics_listen: file.metrics.listen,
            sys_interval: file.sys.interval(),
            persistence: {
                let mut p = crate::store::Persistence::default();
                if let Some(v) = file.persistence {
                    p.mode = v;
                }
                if let Some(v) = file.data_dir {
                    p.data_dir = v;
                }
                if let Some(v) = file.fsync {
                    p.fsync = v;
                }
                if let Some(v) = file.fsync_interval {
                    p.fsync_interval = v.0;
                }
                if let Some(v) = file.offline_memory_messages {
                    p.offline_memory_messages = v;
                }
                p
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../midge.example.toml");

    fn defaults() -> Settings {
        Settings::resolve(FileConfig::default(), &Overrides::default())
    }

    #[test]
    fn example_file_parses_and_states_the_defaults() {
        let file = parse("midge.example.toml", EXAMPLE).unwrap();
        let settings = Settings::resolve(file, &Overrides::default());
        assert_eq!(settings, defaults());
    }

    #[test]
    fn example_file_mentions_every_key() {
        let keys = [
            "listeners",
            "log_level",
            "shards",
            "slow_subscriber",
            "allow_client_sys_publish",
            "[limits]",
            "max_connections",
            "max_sessions",
            "max_packet_size",
            "max_inflight",
            "max_queued_messages",
            "max_queued_bytes",
            "queue_overflow",
            "max_write_buffer",
            "max_offline_messages",
            "max_offline_bytes",
            "offline_overflow",
            "queue_qos0_offline",
            "max_subscriptions_per_client",
            "max_retained_messages",
            "max_retained_bytes",
            "max_client_id_len",
            "[session]",
            "expiry",
            "keep_alive_percent",
            "connect_timeout",
            "allow_zero_length_client_id",
            "generated_client_id_prefix",
        ];
        for key in keys {
            assert!(EXAMPLE.contains(key), "midge.example.toml lacks {key}");
        }
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let settings = Settings::resolve(parse("x.toml", "").unwrap(), &Overrides::default());
        assert_eq!(settings.listeners, vec![DEFAULT_LISTENER]);
        assert_eq!(settings.router, RouterConfig::default());
        assert_eq!(settings.session, ServerConfig::default());
        assert_eq!(settings.log_level, LogLevel::Info);
        assert_eq!(settings.shards, 0);
    }

    #[test]
    fn values_reach_the_cores() {
        let text = r#"
listeners = ["0.0.0.0:1884", "[::]:1885"]
log_level = "debug"
shards = 3
slow_subscriber = "drop"
[limits]
max_connections = 7
max_packet_size = "64KiB"
max_queued_bytes = 4096
queue_overflow = "drop-oldest"
max_subscriptions_per_client = 9
[session]
expiry = "1h30m"
keep_alive_percent = 200
connect_timeout = "5s"
"#;
        let s = Settings::resolve(parse("t.toml", text).unwrap(), &Overrides::default());
        assert_eq!(
            s.listeners,
            vec![
                "0.0.0.0:1884".parse::<SocketAddr>().unwrap(),
                "[::]:1885".parse().unwrap()
            ]
        );
        assert_eq!(s.log_level, LogLevel::Debug);
        assert_eq!(s.shards, 3);
        assert_eq!(s.router.slow_subscriber, SlowSubscriberPolicy::Drop);
        assert_eq!(s.max_connections, 7);
        assert_eq!(s.router.max_connections, 7);
        assert_eq!(s.session.max_packet_size, 65_536);
        assert_eq!(s.session.max_queued_bytes, 4096);
        assert_eq!(s.session.overflow_policy, OverflowPolicy::DropOldest);
        assert_eq!(s.session.max_subscriptions_per_client, 9);
        assert_eq!(s.router.max_subscriptions_per_client, 9);
        assert_eq!(s.router.session_expiry, Some(Duration::from_secs(5400)));
        assert_eq!(s.session.keep_alive_percent, 200);
        assert_eq!(s.session.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn expiry_never_keeps_sessions() {
        let s = Settings::resolve(
            parse("t.toml", "[session]\nexpiry = \"never\"\n").unwrap(),
            &Overrides::default(),
        );
        assert_eq!(s.router.session_expiry, None);
    }

    #[test]
    fn unknown_top_level_key_is_named_with_its_line() {
        let err = parse("m.toml", "shards = 1\n\nlisten = [\"x\"]\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(3), "{err}");
        let shown = err.to_string();
        assert!(shown.starts_with("m.toml:3:"), "{shown}");
        assert!(shown.contains("key `listen`: unknown key"), "{shown}");
        assert!(shown.contains("expected one of `listeners`"), "{shown}");
    }

    #[test]
    fn unknown_key_in_a_table_is_named_with_its_line_and_table() {
        let text = "[limits]\nmax_connections = 5\nmax_conections = 6\n";
        let err = parse("m.toml", text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("m.toml:3:"), "{shown}");
        assert!(shown.contains("max_conections"), "{shown}");
        assert!(shown.contains("limits"), "{shown}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let text = "# comment\n[limits]\nmax_inflight = \"lots\"\n";
        let err = parse("m.toml", text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("limits.max_inflight"), "{err}");
        let shown = err.to_string();
        assert!(shown.starts_with("m.toml:3:"), "{shown}");
        assert!(shown.contains("key `limits.max_inflight`"), "{shown}");
    }

    #[test]
    fn out_of_range_value_names_key_and_line() {
        let text = "[limits]\nmax_inflight = 0\n";
        let err = parse("m.toml", text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("limits.max_inflight"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(2), "{err}");
        assert!(err.message.contains("1 to 65535"), "{err}");

        let err = parse("m.toml", "[session]\nkeep_alive_percent = 50\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("session.keep_alive_percent"));
        assert_eq!(err.position.map(|p| p.0), Some(2), "{err}");
    }

    #[test]
    fn bad_duration_names_key_line_and_unit() {
        let text = "[session]\n\nexpiry = \"3 fortnights\"\n";
        let err = parse("m.toml", text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("session.expiry"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(3), "{err}");
        assert!(err.message.contains("unknown unit"), "{err}");
    }

    #[test]
    fn bad_enum_value_lists_the_choices() {
        let err = parse("m.toml", "slow_subscriber = \"panic\"\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("slow_subscriber"));
        assert!(err.message.contains("back-pressure"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(1));
    }

    #[test]
    fn bad_listener_address_names_key_and_line() {
        let err = parse("m.toml", "\nlisteners = [\"localhost:1883\"]\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(2), "{err}");
        assert!(err.to_string().contains("listeners"), "{err}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let err = parse("m.toml", "shards = 1\nshards =\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(2), "{err}");
    }

    #[test]
    fn port_flag_replaces_the_port_of_file_listeners() {
        let file = parse("t.toml", "listeners = [\"127.0.0.1:1\", \"[::1]:2\"]\n").unwrap();
        let flags = Overrides {
            port: Some(0),
            bind: Vec::new(),
        };
        let s = Settings::resolve(file, &flags);
        assert!(s.listeners.iter().all(|a| a.port() == 0));
        assert_eq!(s.listeners.len(), 2);
    }

    #[test]
    fn bind_flags_replace_file_listeners() {
        let file = parse("t.toml", "listeners = [\"127.0.0.1:1\"]\n").unwrap();
        let flags = Overrides {
            port: Some(1999),
            bind: vec!["::1".parse().unwrap(), "0.0.0.0:7".parse().unwrap()],
        };
        let s = Settings::resolve(file, &flags);
        assert_eq!(
            s.listeners,
            vec![
                "[::1]:1999".parse::<SocketAddr>().unwrap(),
                "0.0.0.0:7".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bind_addresses_parse_with_and_without_ports() {
        assert_eq!(
            "[::]".parse::<BindAddr>(),
            Ok(BindAddr::Ip("::".parse().unwrap()))
        );
        assert_eq!(
            "10.0.0.1".parse::<BindAddr>(),
            Ok(BindAddr::Ip("10.0.0.1".parse().unwrap()))
        );
        assert!(matches!(
            "[::1]:5".parse::<BindAddr>(),
            Ok(BindAddr::Socket(_))
        ));
        assert!("example.com".parse::<BindAddr>().is_err());
    }
}
