//! Command-line flags, modelled on mosquitto_pub and mosquitto_sub so that
//! scripts and fingers carry over.

use std::io::Read;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use midge_codec::QoS;

use crate::exit::{Exit, Failure};

/// The text after every --help: what scripts can rely on.
const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   other error (for example an unreadable -f file or a closed stdout)
  2   bad command line
  3   broker unreachable, or the connection was lost
  4   connection refused by the broker (the CONNACK code is printed)
  5   protocol error from the broker
  27  -W timeout expired (as mosquitto_sub)";

/// midge, the Midge command-line MQTT client.
#[derive(Debug, Parser)]
#[command(name = "midge", version, max_term_width = 100, after_long_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Publish a message (or one per stdin line) and wait for the broker to
    /// acknowledge it.
    #[command(disable_help_flag = true, after_long_help = EXIT_CODES)]
    Pub(PubArgs),
    /// Subscribe and print each message's payload on its own line.
    #[command(disable_help_flag = true, after_long_help = EXIT_CODES)]
    Sub(SubArgs),
    /// Load-test a broker: publishers and subscribers in one process,
    /// reporting throughput, latency, loss and duplicates.
    #[command(disable_help_flag = true, after_long_help = EXIT_CODES)]
    Bench(crate::bench::BenchArgs),
    /// Create or update a password file for midged (the format and flags
    /// of mosquitto_passwd): `midge passwd [-c] [-b] [-D] FILE USER [PASSWORD]`.
    Passwd(crate::passwd::PasswdArgs),
    /// MQTT-SN over UDP: `midge sn pub` and `midge sn sub`, through an
    /// MQTT-SN gateway (midged's on 127.0.0.1:1884, or `midge gateway`).
    #[command(after_long_help = EXIT_CODES)]
    Sn(crate::sn::SnArgs),
    /// Run an MQTT-SN gateway over UDP in front of any MQTT broker:
    /// `midge gateway --broker mqtt://host:port --listen udp://127.0.0.1:1884`.
    #[command(after_long_help = EXIT_CODES)]
    Gateway(crate::gateway::GatewayArgs),
    /// Inspect midged's durable store: `midge store dump ./midge-data`.
    Store(crate::store::StoreArgs),
}

/// Flags shared by `pub` and `sub`: where to connect and as whom.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnArgs {
    /// Print help (-h is the host, as in mosquitto).
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,

    /// Broker host name or IP address.
    #[arg(
        short = 'h',
        long = "host",
        value_name = "HOST",
        default_value = "localhost"
    )]
    pub(crate) host: String,

    /// Broker port. Default 1883, or 8883 with TLS (--cafile, --cert or
    /// --insecure).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub(crate) port: Option<u16>,

    /// Broker and topic as one URL: `mqtt://host[:port]/topic`, also
    /// `mqtts://`, `ws://` and `wss://`. Replaces -h, -p and (pub) -t.
    #[arg(
        short = 'L',
        long = "url",
        value_name = "URL",
        conflicts_with_all = ["host", "port"],
        help = "Broker and topic as one URL: mqtt://host[:port]/topic (also mqtts://, ws://, wss://). Replaces -h, -p and (pub) -t"
    )]
    pub(crate) url: Option<String>,

    /// PEM file of the certificate authorities that sign the broker's
    /// certificate (instead of the system's). Turns TLS on for -h/-p.
    #[arg(long = "cafile", value_name = "FILE")]
    pub(crate) cafile: Option<PathBuf>,

    /// PEM file of a client certificate, for brokers that ask for one
    /// (needs --key). Turns TLS on for -h/-p.
    #[arg(long = "cert", value_name = "FILE", requires = "key")]
    pub(crate) cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key (needs --cert).
    #[arg(long = "key", value_name = "FILE", requires = "cert")]
    pub(crate) key: Option<PathBuf>,

    /// Accept any broker certificate (no chain, expiry or name check): the
    /// connection is encrypted but the broker unauthenticated. Turns TLS on
    /// for -h/-p.
    #[arg(long = "insecure")]
    pub(crate) insecure: bool,

    /// The HTTP path of a ws:// or wss:// -L URL (whose path names the
    /// topic).
    #[arg(long = "ws-path", value_name = "PATH", default_value = "/mqtt")]
    pub(crate) ws_path: String,

    /// Client id. Default: the --id-prefix (or "midge-pub-"/"midge-sub-")
    /// followed by the process id.
    #[arg(
        short = 'i',
        long = "id",
        value_name = "ID",
        conflicts_with = "id_prefix"
    )]
    pub(crate) id: Option<String>,

    /// Prefix of the generated client id; the process id follows it.
    #[arg(long = "id-prefix", value_name = "PREFIX")]
    pub(crate) id_prefix: Option<String>,

    /// User name.
    #[arg(short = 'u', long = "username", value_name = "USER")]
    pub(crate) username: Option<String>,

    /// Password (needs -u).
    #[arg(
        short = 'P',
        long = "pw",
        value_name = "PASSWORD",
        requires = "username"
    )]
    pub(crate) password: Option<String>,

    /// Keep alive in seconds; 0 turns it off.
    #[arg(
        short = 'k',
        long = "keepalive",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub(crate) keep_alive: u16,

    /// Keep the session when disconnected (CleanSession 0): a persistent
    /// session. Needs -i.
    #[arg(short = 'c', long = "disable-clean-session", requires = "id")]
    pub(crate) persistent: bool,

    /// Log each step (connect, subscribe, publish) on stderr, with the
    /// client's own debug output.
    #[arg(short = 'd', long = "debug")]
    pub(crate) debug: bool,

    /// Quality of service: 0, 1 or 2.
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub(crate) qos: QoS,

    /// Stop this many seconds after start, disconnect and exit with code
    /// 27, unless done before (pub: every message acknowledged; sub: -C
    /// messages received).
    #[arg(short = 'W', long = "timeout", value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) timeout: Option<u32>,

    /// Topic the broker publishes the will message to if this client goes
    /// away without disconnecting.
    #[arg(long = "will-topic", value_name = "TOPIC", requires = "will_payload")]
    pub(crate) will_topic: Option<String>,

    /// The will message.
    #[arg(long = "will-payload", value_name = "MESSAGE", requires = "will_topic")]
    pub(crate) will_payload: Option<String>,

    /// QoS of the will message.
    #[arg(long = "will-qos", value_name = "QOS", default_value = "0", value_parser = parse_qos, requires = "will_topic")]
    pub(crate) will_qos: QoS,

    /// Retain the will message.
    #[arg(long = "will-retain", requires = "will_topic")]
    pub(crate) will_retain: bool,
}

/// Where a message comes from: `pub` and `sn pub` share these flags (the
/// command's `source` group makes exactly one of them required).
#[derive(Debug, Clone, Args)]
pub(crate) struct MessageArgs {
    /// The message.
    #[arg(short = 'm', long = "message", value_name = "MESSAGE")]
    pub(crate) message: Option<String>,

    /// Send the contents of a file as the message.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Send each line of stdin as a message (without its newline).
    #[arg(short = 'l', long = "stdin-line")]
    pub(crate) lines: bool,

    /// Send all of stdin as one message.
    #[arg(short = 's', long = "stdin-file")]
    pub(crate) stdin: bool,

    /// Send an empty message (with -r, clears the retained message).
    #[arg(short = 'n', long = "null-message")]
    pub(crate) null: bool,
}

impl MessageArgs {
    /// The one message of `-m`, `-f`, `-n` or `-s`, read now (so a missing
    /// file fails before any connection); `None` for `-l`, whose lines the
    /// command reads itself.
    pub(crate) fn single(&self) -> Result<Option<Vec<u8>>, Failure> {
        if let Some(message) = &self.message {
            Ok(Some(message.clone().into_bytes()))
        } else if let Some(path) = &self.file {
            std::fs::read(path).map(Some).map_err(|e| {
                Failure::new(Exit::Other, format!("cannot read {}: {e}", path.display()))
            })
        } else if self.null {
            Ok(Some(Vec::new()))
        } else if self.stdin {
            let mut all = Vec::new();
            std::io::stdin()
                .read_to_end(&mut all)
                .map_err(|e| Failure::new(Exit::Other, format!("cannot read stdin: {e}")))?;
            Ok(Some(all))
        } else {
            Ok(None)
        }
    }
}

/// `midge pub`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["message", "file", "lines", "null", "stdin"])))]
pub(crate) struct PubArgs {
    /// Topic to publish to.
    #[arg(
        short = 't',
        long = "topic",
        value_name = "TOPIC",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    pub(crate) topic: Option<String>,

    /// Where the message comes from.
    #[command(flatten)]
    pub(crate) body: MessageArgs,

    /// Ask the broker to retain the message.
    #[arg(short = 'r', long = "retain")]
    pub(crate) retain: bool,

    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `midge sub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubArgs {
    /// Topic filter to subscribe to; repeat for several.
    #[arg(short = 't', long = "topic", value_name = "FILTER", action = ArgAction::Append, required_unless_present = "url")]
    pub(crate) topics: Vec<String>,

    /// Print the topic before each payload: "topic payload".
    #[arg(short = 'v', long = "verbose")]
    pub(crate) verbose: bool,

    /// Exit after this many messages.
    #[arg(short = 'C', long = "count", value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,

    /// Do not print retained messages sent because of the subscription
    /// (stale values), only live ones.
    #[arg(short = 'R', long = "no-retained")]
    pub(crate) no_retained: bool,

    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// Parses a QoS level: 0, 1 or 2.
pub(crate) fn parse_qos(text: &str) -> Result<QoS, String> {
    match text.trim() {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        other => Err(format!("{other:?} is not a QoS level (use 0, 1 or 2)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn pub_args(args: &[&str]) -> Result<PubArgs, clap::Error> {
        let mut all = vec!["midge", "pub"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Command::Pub(p) => p,
            _ => unreachable!("parsed pub"),
        })
    }

    fn sub_args(args: &[&str]) -> Result<SubArgs, clap::Error> {
        let mut all = vec!["midge", "sub"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Command::Sub(s) => s,
            _ => unreachable!("parsed sub"),
        })
    }

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pub_defaults() {
        let p = pub_args(&["-t", "a/b", "-m", "hi"]).unwrap();
        assert_eq!(p.conn.host, "localhost");
        assert_eq!(p.conn.port, None);
        assert_eq!(p.conn.qos, QoS::AtMostOnce);
        assert_eq!(p.conn.keep_alive, 60);
        assert!(!p.conn.persistent && !p.retain && !p.conn.debug);
        assert_eq!(p.topic.as_deref(), Some("a/b"));
        assert_eq!(p.body.message.as_deref(), Some("hi"));
    }

    #[test]
    fn dash_h_is_the_host_and_help_is_long_only() {
        let p = pub_args(&["-h", "broker.local", "-t", "x", "-n"]).unwrap();
        assert_eq!(p.conn.host, "broker.local");
        let err = pub_args(&["--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = err.to_string();
        assert!(help.contains("Exit codes"), "{help}");
        assert!(help.contains("27"), "{help}");
    }

    #[test]
    fn every_pub_flag_parses() {
        let p = pub_args(&[
            "-h",
            "::1",
            "-p",
            "1884",
            "-t",
            "t",
            "-f",
            "payload.bin",
            "-q",
            "2",
            "-r",
            "-i",
            "me",
            "-u",
            "user",
            "-P",
            "pw",
            "-k",
            "5",
            "-c",
            "-d",
            "--will-topic",
            "w",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
            "--will-retain",
            "-W",
            "3",
        ])
        .unwrap();
        assert_eq!(p.conn.port, Some(1884));
        assert_eq!(p.conn.qos, QoS::ExactlyOnce);
        assert!(p.retain && p.conn.persistent && p.conn.debug && p.conn.will_retain);
        assert_eq!(p.conn.id.as_deref(), Some("me"));
        assert_eq!(p.conn.password.as_deref(), Some("pw"));
        assert_eq!(p.conn.will_qos, QoS::AtLeastOnce);
        assert_eq!(p.conn.timeout, Some(3));
        assert_eq!(p.body.file, Some(PathBuf::from("payload.bin")));
        assert!(pub_args(&["-t", "t", "-l"]).unwrap().body.lines);
        assert!(pub_args(&["-t", "t", "-s"]).unwrap().body.stdin);
        assert!(pub_args(&["-t", "t", "-n"]).unwrap().body.null);
    }

    #[test]
    fn pub_needs_exactly_one_message_source() {
        assert!(pub_args(&["-t", "t"]).is_err());
        assert!(pub_args(&["-t", "t", "-m", "a", "-n"]).is_err());
        assert!(pub_args(&["-t", "t", "-l", "-f", "x"]).is_err());
    }

    #[test]
    fn pub_needs_a_topic_or_url() {
        assert!(pub_args(&["-m", "a"]).is_err());
        let p = pub_args(&["-L", "mqtt://h:1/a/b", "-m", "x"]).unwrap();
        assert_eq!(p.conn.url.as_deref(), Some("mqtt://h:1/a/b"));
        assert!(pub_args(&["-L", "mqtt://h:1/a", "-p", "2", "-m", "x"]).is_err());
        assert!(pub_args(&["-L", "mqtt://h:1/a", "-t", "b", "-m", "x"]).is_err());
    }

    #[test]
    fn bad_values_are_usage_errors() {
        assert!(pub_args(&["-t", "t", "-m", "x", "-q", "3"]).is_err());
        assert!(pub_args(&["-t", "t", "-m", "x", "-p", "65536"]).is_err());
        assert!(pub_args(&["-t", "t", "-m", "x", "-W", "0"]).is_err());
        // A persistent session needs a client id of its own.
        assert!(pub_args(&["-t", "t", "-m", "x", "-c"]).is_err());
        assert!(pub_args(&["-t", "t", "-m", "x", "-P", "pw"]).is_err());
        assert!(pub_args(&["-t", "t", "-m", "x", "--will-topic", "w"]).is_err());
        assert!(pub_args(&["-t", "t", "-m", "x", "-i", "a", "--id-prefix", "b"]).is_err());
    }

    #[test]
    fn sub_topics_repeat_and_options_parse() {
        let s = sub_args(&["-t", "a/#", "-t", "b/+", "-v", "-C", "3", "-W", "9", "-R"]).unwrap();
        assert_eq!(s.topics, vec!["a/#", "b/+"]);
        assert!(s.verbose && s.no_retained);
        assert_eq!(s.count, Some(3));
        assert_eq!(s.conn.timeout, Some(9));
        assert!(sub_args(&[]).is_err());
        assert!(sub_args(&["-t", "a", "-C", "0"]).is_err());
        assert!(sub_args(&["-L", "mqtt://localhost/a/+"]).is_ok());
    }

    #[test]
    fn qos_levels() {
        assert_eq!(parse_qos("0"), Ok(QoS::AtMostOnce));
        assert_eq!(parse_qos("1"), Ok(QoS::AtLeastOnce));
        assert_eq!(parse_qos("2"), Ok(QoS::ExactlyOnce));
        assert!(parse_qos("-1").is_err());
        assert!(parse_qos("one").is_err());
    }
}
