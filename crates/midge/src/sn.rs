//! `midge sn pub` and `midge sn sub`: the MQTT-SN command-line client, in
//! the spirit of `mqtt-sn-pub` and `mqtt-sn-sub`, on the async SN client
//! (`midge_client::sn`). Exit codes are those of `midge pub|sub`.

use std::io::{Read, Write};
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};
use futures_lite::future::or;
use midge_client::sn::{
    PublishQoS, QoS, SnClientError, SnConnectOptions, SnMessage, SnMessages, SnState, SnTopic,
};
use midge_client::Runtime;
use midge_tokio::{SnClient, TokioRuntime};

use crate::cli::MessageArgs;
use crate::exit::{Exit, Failure};

/// `midge sn`: MQTT-SN over UDP, to `midged`'s gateway or `midge gateway`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SnArgs {
    /// `pub` or `sub`.
    #[command(subcommand)]
    pub(crate) command: SnCommand,
}

/// The `midge sn` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum SnCommand {
    /// Publish a message (or one per stdin line) through an MQTT-SN
    /// gateway; QoS -1 needs no connection.
    #[command(disable_help_flag = true)]
    Pub(SnPubArgs),
    /// Subscribe through an MQTT-SN gateway and print each message on its
    /// own line; with --sleep, as a sleeping client that wakes up to
    /// collect what the gateway buffered.
    #[command(disable_help_flag = true)]
    Sub(SnSubArgs),
}

impl SnArgs {
    /// Whether `-d` was given.
    pub(crate) fn debug(&self) -> bool {
        match &self.command {
            SnCommand::Pub(p) => p.conn.debug,
            SnCommand::Sub(s) => s.conn.debug,
        }
    }
}

/// Where the gateway is, and as whom to connect.
#[derive(Debug, Clone, Args)]
pub(crate) struct SnConnArgs {
    /// Print help (-h is the host, as in mqtt-sn-pub).
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,

    /// Gateway host name or IP address.
    #[arg(
        short = 'h',
        long = "host",
        value_name = "HOST",
        default_value = "127.0.0.1"
    )]
    pub(crate) host: String,

    /// Gateway UDP port.
    #[arg(short = 'p', long = "port", value_name = "PORT", default_value_t = midge_client::sn::DEFAULT_SN_PORT)]
    pub(crate) port: u16,

    /// Gateway as `udp://host:port` (replaces -h and -p).
    #[arg(short = 'L', long = "url", value_name = "URL", conflicts_with_all = ["host", "port"])]
    pub(crate) url: Option<String>,

    /// Client id (1 to 23 octets). Default: midge-sn-PID.
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub(crate) id: Option<String>,

    /// Keep alive in seconds; 0 turns PINGREQ off.
    #[arg(
        short = 'k',
        long = "keepalive",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub(crate) keep_alive: u16,

    /// Persistent session (CleanSession 0).
    #[arg(short = 'c', long = "disable-clean-session", requires = "id")]
    pub(crate) persistent: bool,

    /// Log each step on stderr.
    #[arg(short = 'd', long = "debug")]
    pub(crate) debug: bool,

    /// Stop after this many seconds with exit code 27, unless done before.
    #[arg(short = 'W', long = "timeout", value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) timeout: Option<u32>,

    /// Will topic, published by the gateway if the client is lost.
    #[arg(long = "will-topic", value_name = "TOPIC", requires = "will_payload")]
    pub(crate) will_topic: Option<String>,

    /// Will message.
    #[arg(long = "will-payload", value_name = "MESSAGE", requires = "will_topic")]
    pub(crate) will_payload: Option<String>,

    /// Will QoS (0, 1 or 2).
    #[arg(long = "will-qos", value_name = "QOS", default_value = "0", value_parser = parse_sn_qos, requires = "will_topic")]
    pub(crate) will_qos: QoS,

    /// Retain the will.
    #[arg(long = "will-retain", requires = "will_topic")]
    pub(crate) will_retain: bool,
}

/// How the topic is named: exactly one of -t, -T/--predefined, --short.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct TopicArgs {
    /// Topic name (registered with the gateway before publishing).
    #[arg(short = 't', long = "topic", value_name = "TOPIC")]
    pub(crate) name: Option<String>,

    /// Pre-defined topic id, known to the gateway in advance (as -T of
    /// mqtt-sn-pub).
    #[arg(short = 'T', long = "topic-id", visible_alias = "predefined", value_name = "ID", value_parser = clap::value_parser!(u16).range(1..0xFFFF))]
    pub(crate) predefined: Option<u16>,

    /// Two-character short topic name.
    #[arg(long = "short", value_name = "AB", value_parser = parse_short)]
    pub(crate) short: Option<[u8; 2]>,
}

impl TopicArgs {
    fn topic(&self) -> Option<SnTopic> {
        if let Some(name) = &self.name {
            return Some(SnTopic::Name(name.clone()));
        }
        if let Some(id) = self.predefined {
            return Some(SnTopic::Predefined(id));
        }
        self.short.map(SnTopic::Short)
    }
}

/// `midge sn pub`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["message", "file", "lines", "null", "stdin"])))]
pub(crate) struct SnPubArgs {
    /// The topic.
    #[command(flatten)]
    pub(crate) topic: TopicArgs,

    /// QoS: -1 (no connection; pre-defined or short topic only), 0, 1 or 2.
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value = "0", value_parser = parse_publish_qos, allow_hyphen_values = true)]
    pub(crate) qos: PublishQoS,

    /// Where the message comes from.
    #[command(flatten)]
    pub(crate) body: MessageArgs,

    /// Ask for the message to be retained.
    #[arg(short = 'r', long = "retain")]
    pub(crate) retain: bool,

    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: SnConnArgs,
}

/// `midge sn sub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SnSubArgs {
    /// The topic (a name may hold wildcards).
    #[command(flatten)]
    pub(crate) topic: TopicArgs,

    /// QoS of the subscription: 0, 1 or 2.
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value = "0", value_parser = parse_sn_qos)]
    pub(crate) qos: QoS,

    /// Print the topic before each payload: "topic payload".
    #[arg(short = 'v', long = "verbose")]
    pub(crate) verbose: bool,

    /// Exit after this many messages.
    #[arg(short = 'C', long = "count", value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,

    /// Sleep for this many seconds (DISCONNECT with a duration), waking
    /// every half of it to collect what the gateway buffered meanwhile.
    #[arg(short = 'e', long = "sleep", value_name = "SECS", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) sleep: Option<u16>,

    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: SnConnArgs,
}

/// Parses a subscription or will QoS: 0, 1 or 2.
fn parse_sn_qos(text: &str) -> Result<QoS, String> {
    match text.trim() {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        other => Err(format!("{other:?} is not a QoS level (use 0, 1 or 2)")),
    }
}

/// Parses a publish QoS: -1, 0, 1 or 2.
fn parse_publish_qos(text: &str) -> Result<PublishQoS, String> {
    match text.trim() {
        "-1" => Ok(PublishQoS::MinusOne),
        "0" => Ok(PublishQoS::AtMostOnce),
        "1" => Ok(PublishQoS::AtLeastOnce),
        "2" => Ok(PublishQoS::ExactlyOnce),
        other => Err(format!("{other:?} is not a QoS level (use -1, 0, 1 or 2)")),
    }
}

/// Parses a short topic name: exactly two octets.
fn parse_short(text: &str) -> Result<[u8; 2], String> {
    <[u8; 2]>::try_from(text.as_bytes())
        .map_err(|_| format!("{text:?} is not a short topic name (exactly two characters)"))
}

/// What an SN client error means for the exit code.
fn failure(err: SnClientError) -> Failure {
    let exit = match &err {
        SnClientError::Address(_)
        | SnClientError::UnsupportedScheme(_)
        | SnClientError::Usage(_) => Exit::Usage,
        SnClientError::Refused(_) | SnClientError::Rejected(_) | SnClientError::Dropped => {
            Exit::Refused
        }
        SnClientError::Unresolved { .. }
        | SnClientError::Io(_)
        | SnClientError::GatewayLost
        | SnClientError::GatewayDisconnected
        | SnClientError::Disconnected
        | SnClientError::Closed => Exit::Unreachable,
        _ => Exit::Other,
    };
    Failure::new(exit, err.to_string())
}

/// The client options from the connection flags.
fn options(conn: &SnConnArgs, default_id: &str) -> Result<SnConnectOptions, Failure> {
    let gateway = match &conn.url {
        Some(url) => url.clone(),
        None if conn.host.contains(':') => format!("[{}]:{}", conn.host, conn.port),
        None => format!("{}:{}", conn.host, conn.port),
    };
    let id = conn
        .id
        .clone()
        .unwrap_or_else(|| format!("{default_id}-{}", std::process::id()));
    let mut options = SnConnectOptions::new(&gateway, id)
        .map_err(failure)?
        .with_keep_alive(conn.keep_alive)
        .with_clean_session(!conn.persistent);
    if let (Some(topic), Some(payload)) = (&conn.will_topic, &conn.will_payload) {
        options = options.with_will(
            topic.clone(),
            payload.clone().into_bytes(),
            conn.will_qos,
            conn.will_retain,
        );
    }
    Ok(options)
}

/// Runs `work` until it ends or the `-W` deadline passes (exit code 27).
async fn within<T>(
    rt: &TokioRuntime,
    secs: Option<u32>,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match secs {
        None => work.await,
        Some(secs) => {
            let limit = rt.sleep(Duration::from_secs(u64::from(secs)));
            or(work, async {
                limit.await;
                Err(Failure::new(
                    Exit::Timeout,
                    format!("timed out after {secs} s (-W)"),
                ))
            })
            .await
        }
    }
}

/// Runs `midge sn pub` or `midge sn sub`.
pub(crate) async fn run(args: SnArgs) -> Result<(), Failure> {
    let rt = TokioRuntime::current();
    match args.command {
        SnCommand::Pub(args) => {
            let secs = args.conn.timeout;
            within(&rt, secs, publish(&rt, args)).await
        }
        SnCommand::Sub(args) => {
            let secs = args.conn.timeout;
            let (client, result) = {
                let mut client = None;
                let result = within(&rt, secs, subscribe(&rt, &args, &mut client)).await;
                (client, result)
            };
            // Stopped by -C or -W: leave politely (a sleeping client too).
            if let Some(client) = client {
                if client.state() != SnState::Disconnected {
                    if let Ok(done) = client.disconnect() {
                        let _ = within(&rt, Some(5), async { done.await.map_err(failure) }).await;
                    }
                }
            }
            result
        }
    }
}

/// The messages `pub` sends.
fn payloads(args: &SnPubArgs) -> Result<Vec<Vec<u8>>, Failure> {
    if let Some(single) = args.body.single()? {
        return Ok(vec![single]);
    }
    // -l: every line of stdin, read at once.
    let mut all = Vec::new();
    std::io::stdin()
        .read_to_end(&mut all)
        .map_err(|e| Failure::new(Exit::Other, format!("cannot read stdin: {e}")))?;
    Ok(all
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).to_vec())
        .filter(|line| !line.is_empty())
        .collect())
}

async fn publish(rt: &TokioRuntime, args: SnPubArgs) -> Result<(), Failure> {
    let topic = args
        .topic
        .topic()
        .ok_or_else(|| Failure::new(Exit::Usage, "a topic is needed"))?;
    if args.qos == PublishQoS::MinusOne && matches!(topic, SnTopic::Name(_)) {
        return Err(Failure::new(
            Exit::Usage,
            "QoS -1 needs a pre-defined topic id (-T) or a short name (--short)",
        ));
    }
    let payloads = payloads(&args)?;
    let options = options(&args.conn, "midge-sn-pub")?;
    let (client, _messages) = SnClient::open_with(rt.clone(), options)
        .await
        .map_err(failure)?;
    let connected = args.qos != PublishQoS::MinusOne;
    if connected {
        tracing::debug!(gateway = %client.gateway(), "connecting");
        client
            .reconnect()
            .map_err(failure)?
            .await
            .map_err(failure)?;
    }
    for payload in payloads {
        tracing::debug!(len = payload.len(), "publishing");
        client
            .publish(topic.clone(), payload, args.qos, args.retain)
            .map_err(failure)?
            .await
            .map_err(failure)?;
    }
    if connected {
        client
            .disconnect()
            .map_err(failure)?
            .await
            .map_err(failure)?;
    }
    Ok(())
}

async fn subscribe(
    rt: &TokioRuntime,
    args: &SnSubArgs,
    slot: &mut Option<SnClient>,
) -> Result<(), Failure> {
    let topic = args
        .topic
        .topic()
        .ok_or_else(|| Failure::new(Exit::Usage, "a topic is needed"))?;
    let options = options(&args.conn, "midge-sn-sub")?;
    let (client, mut messages) = SnClient::open_with(rt.clone(), options)
        .await
        .map_err(failure)?;
    *slot = Some(client.clone());
    tracing::debug!(gateway = %client.gateway(), "connecting");
    client
        .reconnect()
        .map_err(failure)?
        .await
        .map_err(failure)?;
    let granted = client
        .subscribe(topic, args.qos)
        .map_err(failure)?
        .await
        .map_err(failure)?;
    tracing::debug!(?granted, "subscribed");
    let printing = print_messages(&mut messages, args.verbose, args.count);
    match args.sleep {
        None => printing.await,
        Some(secs) => or(printing, sleep_and_wake(rt, &client, secs)).await,
    }
}

/// Prints messages until `count` were printed (or the client stops).
async fn print_messages(
    messages: &mut SnMessages,
    verbose: bool,
    count: Option<u64>,
) -> Result<(), Failure> {
    let mut printed = 0u64;
    while let Some(message) = messages.recv().await {
        print_message(&mut std::io::stdout().lock(), &message, verbose)
            .map_err(|e| Failure::new(Exit::Other, format!("cannot write stdout: {e}")))?;
        printed += 1;
        if count.is_some_and(|count| printed >= count) {
            return Ok(());
        }
    }
    Err(Failure::new(Exit::Unreachable, "the client stopped"))
}

/// Sleeps, then wakes every half of the sleep duration so the gateway
/// hands over what it buffered; never ends by itself.
async fn sleep_and_wake(rt: &TokioRuntime, client: &SnClient, secs: u16) -> Result<(), Failure> {
    client
        .sleep(secs)
        .map_err(failure)?
        .await
        .map_err(failure)?;
    tracing::debug!(secs, "asleep");
    let period = Duration::from_millis(u64::from(secs) * 500).max(Duration::from_secs(1));
    loop {
        rt.sleep(period).await;
        let complete = client
            .wake_once()
            .map_err(failure)?
            .await
            .map_err(failure)?;
        tracing::debug!(complete, "awake period over");
    }
}

/// Writes one message as a line: the payload, or `topic payload` with -v.
fn print_message(out: &mut impl Write, message: &SnMessage, verbose: bool) -> std::io::Result<()> {
    if verbose {
        out.write_all(message.topic_text().as_bytes())?;
        out.write_all(b" ")?;
    }
    out.write_all(&message.payload)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Top {
        #[command(subcommand)]
        sn: SnCommand,
    }

    fn parse(args: &[&str]) -> Result<SnCommand, clap::Error> {
        Top::try_parse_from(std::iter::once("sn").chain(args.iter().copied())).map(|t| t.sn)
    }

    fn pub_args(args: &[&str]) -> SnPubArgs {
        match parse(&[&["pub"], args].concat()).unwrap() {
            SnCommand::Pub(p) => p,
            SnCommand::Sub(_) => panic!("not pub"),
        }
    }

    fn sub_args(args: &[&str]) -> SnSubArgs {
        match parse(&[&["sub"], args].concat()).unwrap() {
            SnCommand::Sub(s) => s,
            SnCommand::Pub(_) => panic!("not sub"),
        }
    }

    #[test]
    fn pub_defaults_and_topic_forms() {
        let p = pub_args(&["-t", "a/b", "-m", "x"]);
        assert_eq!(p.conn.host, "127.0.0.1");
        assert_eq!(p.conn.port, 1884);
        assert_eq!(p.qos, PublishQoS::AtMostOnce);
        assert_eq!(p.topic.topic(), Some(SnTopic::Name("a/b".into())));
        let p = pub_args(&["-T", "7", "-m", "x", "-q", "-1"]);
        assert_eq!(p.topic.topic(), Some(SnTopic::Predefined(7)));
        assert_eq!(p.qos, PublishQoS::MinusOne);
        let p = pub_args(&["--predefined", "8", "-n"]);
        assert_eq!(p.topic.topic(), Some(SnTopic::Predefined(8)));
        let p = pub_args(&["--short", "ab", "-m", "x", "-q", "2", "-r"]);
        assert_eq!(p.topic.topic(), Some(SnTopic::Short(*b"ab")));
        assert_eq!(p.qos, PublishQoS::ExactlyOnce);
        assert!(p.retain);
    }

    #[test]
    fn exactly_one_topic_form_and_one_source() {
        assert!(parse(&["pub", "-m", "x"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-T", "3", "-m", "x"]).is_err());
        assert!(parse(&["pub", "-t", "a"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-n"]).is_err());
        assert!(parse(&["sub"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["pub", "--short", "abc", "-m", "x"][..],
            &["pub", "-T", "0", "-m", "x"],
            &["pub", "-T", "65535", "-m", "x"],
            &["pub", "-t", "a", "-m", "x", "-q", "3"],
            &["sub", "-t", "a", "-q", "-1"],
            &["sub", "-t", "a", "--sleep", "0"],
            &["pub", "-t", "a", "-m", "x", "-L", "udp://h:1", "-p", "2"],
            &["pub", "-t", "a", "-m", "x", "--will-topic", "w"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn sub_flags_parse() {
        let s = sub_args(&[
            "-t",
            "s/#",
            "-q",
            "1",
            "-v",
            "-C",
            "3",
            "--sleep",
            "10",
            "-L",
            "udp://[::1]:1999",
            "-i",
            "me",
            "-k",
            "5",
            "-W",
            "9",
            "--will-topic",
            "w",
            "--will-payload",
            "p",
            "--will-qos",
            "2",
            "--will-retain",
        ]);
        assert_eq!(s.qos, QoS::AtLeastOnce);
        assert!(s.verbose);
        assert_eq!(s.count, Some(3));
        assert_eq!(s.sleep, Some(10));
        assert_eq!(s.conn.timeout, Some(9));
        let o = options(&s.conn, "x").unwrap();
        assert_eq!((o.host(), o.port()), ("::1", 1999));
        let mut o = o;
        let config = o.config_mut();
        assert_eq!(config.client_id, "me");
        assert_eq!(config.keep_alive, 5);
        let will = config.will.clone().unwrap();
        assert_eq!(
            (will.topic.as_str(), will.qos, will.retain),
            ("w", QoS::ExactlyOnce, true)
        );
    }

    #[test]
    fn ipv6_host_flag_is_bracketed() {
        let p = pub_args(&["-t", "a", "-m", "x", "-h", "::1", "-p", "1900"]);
        let o = options(&p.conn, "x").unwrap();
        assert_eq!((o.host(), o.port()), ("::1", 1900));
    }

    #[test]
    fn errors_map_to_exit_codes() {
        assert_eq!(failure(SnClientError::GatewayLost).exit, Exit::Unreachable);
        assert_eq!(
            failure(SnClientError::Refused(
                midge_client::sn::ReturnCode::NotSupported
            ))
            .exit,
            Exit::Refused
        );
        assert_eq!(
            failure(SnClientError::Address("x".into())).exit,
            Exit::Usage
        );
    }
}
