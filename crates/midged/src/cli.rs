//! Command-line flags.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::config::{BindAddr, LogLevel};

/// midged, the Midge MQTT 3.1.1 broker.
///
/// With no arguments it listens on 127.0.0.1:1883 with the defaults listed
/// in docs/configuration.md. Flags override the configuration file.
///
/// Exit codes: 0 after a clean shutdown (SIGINT or SIGTERM); 1 when the
/// broker cannot run (for example a port already in use); 2 for a bad
/// command line or configuration file.
#[derive(Debug, Parser)]
#[command(name = "midged", version, max_term_width = 100)]
pub(crate) struct Args {
    /// Configuration file (TOML); see midge.example.toml for every key.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Port to listen on: replaces the port of every listener from the
    /// configuration file, and applies to each --bind address given without
    /// one. 0 picks a free port (the chosen one is logged).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub(crate) port: Option<u16>,

    /// Address to listen on, IPv4 or IPv6, with or without a port
    /// (`0.0.0.0`, `::`, `127.0.0.1:1884`, `[::1]:1884`). Repeat for
    /// several listeners; replaces the listeners of the configuration file.
    #[arg(
        long = "bind",
        value_name = "ADDR",
        action = ArgAction::Append,
        help = "Address to listen on, IPv4 or IPv6, with or without a port \
                (0.0.0.0, ::, 127.0.0.1:1884, [::1]:1884). Repeat for several \
                listeners; replaces the listeners of the configuration file"
    )]
    pub(crate) bind: Vec<BindAddr>,

    /// Serve Prometheus metrics at http://ADDR/metrics (replaces the
    /// file's `[metrics] listen`).
    #[arg(long = "metrics", value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,

    /// UDP port of the MQTT-SN gateway (default 1884); 0 disables it.
    #[arg(long = "sn-port", value_name = "PORT")]
    pub(crate) sn_port: Option<u16>,

    /// UDP address of the MQTT-SN gateway, IPv4 or IPv6, with or without a
    /// port (default 127.0.0.1:1884).
    #[arg(long = "sn-bind", value_name = "ADDR")]
    pub(crate) sn_bind: Option<BindAddr>,

    /// MQTT-SN pre-defined topic ids, NAME=ID, comma-separated or repeated
    /// (sensors/temp=1,sensors/hum=2); added to the file's [sn.predefined].
    #[arg(long = "sn-predefined", value_name = "NAME=ID", value_delimiter = ',', action = ArgAction::Append)]
    pub(crate) sn_predefined: Vec<crate::sn::Predefined>,

    /// Where sessions, queues and retained messages live: durable (on disk
    /// under --data-dir, the default) or none (in memory only).
    #[arg(long = "persistence", value_name = "MODE")]
    pub(crate) persistence: Option<crate::store::Mode>,

    /// The durable store's directory (default ./midge-data, created on
    /// first start).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// When acknowledged messages reach the disk: always (one sync per
    /// message), batch (grouped within --fsync-interval, the default) or
    /// never (acknowledged before the sync).
    #[arg(long = "fsync", value_name = "POLICY")]
    pub(crate) fsync: Option<crate::store::Fsync>,

    /// The bound of a batched commit, in milliseconds (default 2).
    #[arg(long = "fsync-interval-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) fsync_interval_ms: Option<u64>,

    /// More log output: -v for debug, -vv for trace. Overrides RUST_LOG and
    /// the file's log_level.
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Log errors only. Overrides RUST_LOG and the file's log_level.
    #[arg(short = 'q', long = "quiet")]
    pub(crate) quiet: bool,
}

impl Args {
    /// The log level the flags ask for, if any.
    pub(crate) fn log_level(&self) -> Option<LogLevel> {
        if self.quiet {
            return Some(LogLevel::Error);
        }
        match self.verbose {
            0 => None,
            1 => Some(LogLevel::Debug),
            _ => Some(LogLevel::Trace),
        }
    }
    /// Applies --persistence, --data-dir, --fsync and --fsync-interval-ms.
    pub(crate) fn apply_persistence(&self, p: &mut crate::store::Persistence) {
        if let Some(v) = self.persistence {
            p.mode = v;
        }
        if let Some(v) = &self.data_dir {
            p.data_dir.clone_from(v);
        }
        if let Some(v) = self.fsync {
            p.fsync = v;
        }
        if let Some(ms) = self.fsync_interval_ms {
            p.fsync_interval = std::time::Duration::from_millis(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn no_arguments_is_valid() {
        let args = Args::try_parse_from(["midged"]).unwrap();
        assert!(args.config.is_none() && args.port.is_none() && args.bind.is_empty());
        assert_eq!(args.log_level(), None);
    }

    #[test]
    fn every_flag_parses() {
        let args = Args::try_parse_from([
            "midged",
            "-c",
            "m.toml",
            "-p",
            "0",
            "--bind",
            "::1",
            "--bind",
            "0.0.0.0:9",
            "-vv",
        ])
        .unwrap();
        assert_eq!(args.config, Some(PathBuf::from("m.toml")));
        assert_eq!(args.port, Some(0));
        assert_eq!(args.bind.len(), 2);
        assert_eq!(args.log_level(), Some(LogLevel::Trace));
        let args = Args::try_parse_from(["midged", "-q"]).unwrap();
        assert_eq!(args.log_level(), Some(LogLevel::Error));
        let args = Args::try_parse_from(["midged", "--verbose"]).unwrap();
        assert_eq!(args.log_level(), Some(LogLevel::Debug));
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(Args::try_parse_from(["midged", "--bind", "nowhere"]).is_err());
        assert!(Args::try_parse_from(["midged", "-p", "70000"]).is_err());
        assert!(Args::try_parse_from(["midged", "-q", "-v"]).is_err());
        assert!(Args::try_parse_from(["midged", "--persist"]).is_err());
    }

    #[test]
    fn help_documents_every_flag() {
        let help = Args::command().render_long_help().to_string();
        for flag in [
            "--config",
            "--port",
            "--bind",
            "--verbose",
            "--quiet",
            "Exit codes",
        ] {
            assert!(help.contains(flag), "--help lacks {flag}");
        }
    }
}
