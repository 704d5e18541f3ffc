//! `midge gateway`: the MQTT-SN gateway of `midged`, standalone, in front of
//! any MQTT broker reached by TCP. One MQTT connection per SN client
//! (a transparent gateway); runs until SIGINT or SIGTERM.

use std::net::SocketAddr;

use clap::Args;
use midge_gateway::gateway::GatewayConfig;
use midge_gateway::{Gateway, GatewayOptions, TcpConnector};
use midge_tokio::{BrokerUrl, Runtime, TokioRuntime};

use crate::exit::{Exit, Failure};

/// Flags of `midge gateway`.
#[derive(Debug, Clone, Args)]
pub(crate) struct GatewayArgs {
    /// The MQTT broker: mqtt://host:port, host:port or host.
    #[arg(
        long = "broker",
        value_name = "URL",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub(crate) broker: String,

    /// The UDP address MQTT-SN clients send to: udp://host:port or
    /// host:port (IPv4 or IPv6).
    #[arg(long = "listen", value_name = "ADDR", default_value = "udp://127.0.0.1:1884", value_parser = parse_listen)]
    pub(crate) listen: SocketAddr,

    /// Pre-defined topic ids, NAME=ID, comma-separated or repeated
    /// (sensors/temp=1,sensors/hum=2).
    #[arg(long = "predefined", value_name = "NAME=ID", value_delimiter = ',', value_parser = parse_predefined)]
    pub(crate) predefined: Vec<(String, u16)>,

    /// GwId in ADVERTISE and GWINFO.
    #[arg(long = "gateway-id", value_name = "N", default_value_t = 1)]
    pub(crate) gateway_id: u8,

    /// Where ADVERTISE and GWINFO go: a broadcast address or a multicast
    /// group, with port (255.255.255.255:1884, 225.1.1.1:1884). Without it
    /// the gateway does not advertise itself.
    #[arg(long = "broadcast", value_name = "ADDR")]
    pub(crate) broadcast: Option<SocketAddr>,

    /// Seconds between two ADVERTISE broadcasts (T_ADV).
    #[arg(
        long = "advertise-interval",
        value_name = "SECS",
        default_value_t = 900
    )]
    pub(crate) advertise_interval: u16,

    /// User name for every broker connection.
    #[arg(short = 'u', long = "username", value_name = "USER")]
    pub(crate) username: Option<String>,

    /// Password for every broker connection.
    #[arg(
        short = 'P',
        long = "pw",
        value_name = "PASSWORD",
        requires = "username"
    )]
    pub(crate) password: Option<String>,

    /// Log every client connecting, sleeping and leaving (debug).
    #[arg(short = 'd', long = "debug")]
    pub(crate) debug: bool,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let bare = s.strip_prefix("udp://").unwrap_or(s);
    bare.parse().map_err(|_| {
        format!("{s:?} is not a UDP address (examples: udp://127.0.0.1:1884, [::1]:1884)")
    })
}

fn parse_predefined(s: &str) -> Result<(String, u16), String> {
    let (name, id) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=ID (example: sensors/temp=1)"))?;
    match id.parse::<u16>() {
        Ok(id) if !name.is_empty() && id != 0 && id != 0xFFFF => Ok((name.to_owned(), id)),
        _ => Err(format!(
            "{s:?}: a name and an id from 1 to 65534 are needed"
        )),
    }
}

impl GatewayArgs {
    fn options(&self) -> Result<GatewayOptions, Failure> {
        let mut config = GatewayConfig::new(self.gateway_id);
        config.t_adv = match (self.broadcast, self.advertise_interval) {
            (Some(_), secs) if secs > 0 => {
                Some(midge_runtime::Duration::from_secs(u64::from(secs)))
            }
            _ => None,
        };
        for (name, id) in &self.predefined {
            if let Some(other) = config.predefined.insert(*id, name.clone()) {
                return Err(Failure::new(
                    Exit::Usage,
                    format!("pre-defined topic id {id} is given to both {other:?} and {name:?}"),
                ));
            }
        }
        config.broker_credentials = self.username.clone().map(|user| {
            (
                user,
                self.password
                    .clone()
                    .map(|p| bytes::Bytes::from(p.into_bytes())),
            )
        });
        Ok(GatewayOptions {
            listen: self.listen,
            broadcast: self.broadcast,
            config,
            ..GatewayOptions::default()
        })
    }
}

/// Runs the gateway until SIGINT or SIGTERM.
pub(crate) async fn run(args: GatewayArgs) -> Result<(), Failure> {
    let url: BrokerUrl = args
        .broker
        .parse()
        .map_err(|e| Failure::new(Exit::Usage, format!("--broker {:?}: {e}", args.broker)))?;
    let options = args.options()?;
    let rt = TokioRuntime::current();
    let connector = TcpConnector::new(rt.clone(), url)
        .map_err(|e| Failure::new(Exit::Usage, format!("--broker {:?}: {e}", args.broker)))?;
    let gateway = Gateway::bind(rt, options, connector).await.map_err(|e| {
        Failure::new(
            Exit::Other,
            format!("cannot listen on udp {}: {e}", args.listen),
        )
    })?;
    // Scripts and tests read this line to learn the address.
    eprintln!(
        "midge gateway: mqtt-sn on udp {}, broker {}",
        gateway.local_addr(),
        args.broker
    );
    let handle = gateway.handle();
    let task = tokio::spawn(gateway.run());
    tokio::select! {
        () = shutdown_signal() => handle.shutdown(),
        () = handle.closed() => {}
    }
    match task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(Exit::Other, format!("gateway failed: {e}"))),
        Err(e) => Err(Failure::new(
            Exit::Other,
            format!("gateway task failed: {e}"),
        )),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn listen_and_predefined_values_parse() {
        assert_eq!(
            parse_listen("udp://127.0.0.1:1884").unwrap(),
            "127.0.0.1:1884".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:9").unwrap(),
            "[::1]:9".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_listen("udp://nowhere").is_err());
        assert_eq!(parse_predefined("a/b=3").unwrap(), ("a/b".to_owned(), 3));
        assert!(parse_predefined("a/b").is_err());
        assert!(parse_predefined("a/b=0").is_err());
        assert!(parse_predefined("a/b=65535").is_err());
    }

    #[test]
    fn options_refuse_an_id_given_twice_and_advertise_only_with_a_broadcast_address() {
        let mut args = GatewayArgs {
            broker: "mqtt://127.0.0.1:1883".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            predefined: vec![("a".into(), 1), ("b".into(), 2)],
            gateway_id: 4,
            broadcast: None,
            advertise_interval: 60,
            username: Some("u".into()),
            password: None,
            debug: false,
        };
        let options = args.options().unwrap();
        assert_eq!(options.config.t_adv, None);
        assert_eq!(options.config.gateway_id, 4);
        assert_eq!(options.config.predefined.len(), 2);
        assert_eq!(
            options.config.broker_credentials,
            Some(("u".to_owned(), None))
        );
        args.broadcast = Some("255.255.255.255:1884".parse().unwrap());
        assert_eq!(
            args.options().unwrap().config.t_adv,
            Some(midge_runtime::Duration::from_secs(60))
        );
        args.predefined.push(("c".into(), 1));
        assert!(args.options().is_err());
    }
}
