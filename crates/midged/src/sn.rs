//! The MQTT-SN gateway inside `midged`: the `[sn]` table, the `--sn-*`
//! flags, and the gateway itself (`midge-gateway` over UDP, reaching the
//! broker in memory, so SN and MQTT clients share topics, retained
//! messages and sessions).
//!
//! With `persistence = "durable"` the gateway's state (per-client topic
//! registries, wills, sleeping clients and their buffered messages) is kept
//! in `DATA_DIR/gateway` (`midge_store::GatewayStore`), committed before
//! the gateway answers, and restored at start. Pre-defined topic ids come
//! from the configuration and need no storing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use midge_gateway::gateway::{ClientRecord, GatewayConfig, PersistOp};
use midge_gateway::{Gateway, GatewayHandle, GatewayOptions, GatewayPersistence, LocalConnector};
use midge_server::ServerHandle;
use midge_store::GatewayStore;
use midge_tokio::TokioRuntime;
use serde::{Deserialize, Deserializer};

use crate::config::BindAddr;
use crate::store::{Mode, Persistence};
use crate::units::HumaneDuration;

/// The default UDP port of MQTT-SN.
pub(crate) const DEFAULT_PORT: u16 = 1884;

/// The `[sn]` table of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnFileConfig {
    /// Whether the gateway runs (default true).
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    /// UDP address (default 127.0.0.1:1884).
    #[serde(default)]
    pub(crate) bind: Option<SocketAddr>,
    /// GwId in ADVERTISE and GWINFO (default 1).
    #[serde(default)]
    pub(crate) gateway_id: Option<u8>,
    /// T_ADV; "0s" or absent broadcast address: no ADVERTISE.
    #[serde(default)]
    pub(crate) advertise_interval: Option<HumaneDuration>,
    /// Where ADVERTISE and GWINFO go: a broadcast address or a multicast
    /// group, with port.
    #[serde(default)]
    pub(crate) broadcast: Option<SocketAddr>,
    /// Topic name to pre-defined id.
    #[serde(default)]
    pub(crate) predefined: BTreeMap<String, u16>,
    /// Limits.
    #[serde(default, deserialize_with = "positive")]
    pub(crate) max_clients: Option<usize>,
    #[serde(default, deserialize_with = "positive")]
    pub(crate) max_registrations: Option<usize>,
    #[serde(default, deserialize_with = "positive")]
    pub(crate) max_buffered: Option<usize>,
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let value = usize::deserialize(d)?;
    if value == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(Some(value))
}

/// One `--sn-predefined` entry: `NAME=ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Predefined {
    pub(crate) name: String,
    pub(crate) id: u16,
}

impl std::str::FromStr for Predefined {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, id) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("{s:?} is not NAME=ID (example: sensors/temp=1)"))?;
        let id: u16 = id
            .parse()
            .map_err(|_| format!("{id:?} is not a topic id (1 to 65534)"))?;
        if name.is_empty() || id == 0 || id == 0xFFFF {
            return Err(format!(
                "{s:?}: a name and an id from 1 to 65534 are needed"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
        })
    }
}

/// The flags that concern the gateway.
#[derive(Debug, Clone, Default)]
pub(crate) struct SnFlags {
    /// `--sn-port` (0 disables).
    pub(crate) port: Option<u16>,
    /// `--sn-bind`.
    pub(crate) bind: Option<BindAddr>,
    /// `--sn-predefined`, added to (and overriding) the file's table.
    pub(crate) predefined: Vec<Predefined>,
}

/// The gateway's settings, file and flags merged; `None` when disabled.
#[derive(Debug, Clone)]
pub(crate) struct SnSettings {
    pub(crate) options: GatewayOptions,
    /// Configured by a flag or an `[sn]` address: a failure to bind is
    /// fatal. The default gateway only warns (another `midged`, or another
    /// gateway, may hold UDP 1884).
    pub(crate) explicit: bool,
}

impl SnSettings {
    /// Merges the `[sn]` table with the flags: a flag wins.
    ///
    /// # Errors
    /// A pre-defined id given to two names.
    pub(crate) fn resolve(file: SnFileConfig, flags: &SnFlags) -> Result<Option<Self>, String> {
        let explicit = flags.port.is_some() || flags.bind.is_some() || file.bind.is_some();
        let mut bind = file.bind.unwrap_or(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            DEFAULT_PORT,
        ));
        match flags.bind {
            Some(BindAddr::Socket(addr)) => bind = addr,
            Some(BindAddr::Ip(ip)) => bind = SocketAddr::new(ip, DEFAULT_PORT),
            None => {}
        }
        if let Some(port) = flags.port {
            if port == 0 {
                return Ok(None);
            }
            bind.set_port(port);
        }
        if file.enabled == Some(false) && flags.port.is_none() && flags.bind.is_none() {
            return Ok(None);
        }
        let mut config = GatewayConfig::new(file.gateway_id.unwrap_or(1));
        match file.advertise_interval {
            Some(HumaneDuration(d)) if d.is_zero() => config.t_adv = None,
            Some(HumaneDuration(d)) => {
                let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                config.t_adv = Some(midge_runtime::Duration::from_micros(micros));
            }
            None => {}
        }
        if file.broadcast.is_none() {
            // Nowhere to send ADVERTISE to.
            config.t_adv = None;
        }
        if let Some(v) = file.max_clients {
            config.max_clients = v;
        }
        if let Some(v) = file.max_registrations {
            config.max_registrations = v;
        }
        if let Some(v) = file.max_buffered {
            config.max_buffered = v;
        }
        let mut by_name = file.predefined;
        for p in &flags.predefined {
            by_name.insert(p.name.clone(), p.id);
        }
        for (name, id) in by_name {
            if let Some(other) = config.predefined.insert(id, name.clone()) {
                return Err(format!(
                    "pre-defined topic id {id} is given to both {other:?} and {name:?}"
                ));
            }
        }
        Ok(Some(Self {
            options: GatewayOptions {
                listen: bind,
                broadcast: file.broadcast,
                config,
                ..GatewayOptions::default()
            },
            explicit,
        }))
    }
}

/// Binds the gateway and runs it in a task; `Ok(None)` when disabled.
///
/// # Errors
/// A socket that cannot be bound, or a configuration the core refuses.
pub(crate) async fn start(
    settings: Option<&SnSettings>,
    rt: &TokioRuntime,
    server: ServerHandle,
    persistence: &Persistence,
) -> Result<Option<(GatewayHandle, tokio::task::JoinHandle<std::io::Result<()>>)>, String> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    // Opened before the socket is bound: a store held by another process
    // stops the start-up, as the broker's own stores do.
    let state = match persistence.mode {
        Mode::Durable => Some(open_state(&persistence.data_dir)?),
        Mode::None => None,
    };
    let bound = Gateway::bind(
        rt.clone(),
        settings.options.clone(),
        LocalConnector::new(server),
    )
    .await;
    let gateway = match bound {
        Ok(gateway) => gateway,
        Err(e) => {
            let message = format!(
                "cannot start the MQTT-SN gateway on udp {}: {e}",
                settings.options.listen
            );
            if settings.explicit {
                return Err(message);
            }
            tracing::warn!("{message}; running without it (set --sn-port or [sn] bind)");
            return Ok(None);
        }
    };
    let gateway = match state {
        Some((records, store)) => gateway
            .with_persistence(records, StoredState(store))
            .map_err(|e| format!("cannot start the MQTT-SN gateway: {e}"))?,
        None => gateway,
    };
    // Tests and scripts read this line to learn the gateway's address.
    tracing::info!("mqtt-sn gateway on udp {}", gateway.local_addr());
    let handle = gateway.handle();
    let task = tokio::spawn(gateway.run());
    Ok(Some((handle, task)))
}

/// The gateway's database under the data directory.
pub(crate) fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("gateway")
}

/// Opens the gateway's database and reads its records; a damaged one was
/// moved aside and salvaged by the store, and is logged here.
fn open_state(data_dir: &Path) -> Result<(Vec<ClientRecord>, GatewayStore), String> {
    let path = state_dir(data_dir);
    std::fs::create_dir_all(data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    let opened = GatewayStore::open(&path).map_err(|e| {
        format!(
            "cannot open the MQTT-SN gateway store {}: {e}",
            path.display()
        )
    })?;
    if let Some(r) = &opened.recovery {
        tracing::error!(
            path = %path.display(),
            moved_to = %r.moved_to.display(),
            error = %r.error,
            salvaged = r.salvaged,
            lost = r.lost,
            "the MQTT-SN gateway store was damaged; it was moved aside and what could be read was kept"
        );
    }
    let records = opened.records;
    tracing::info!(
        path = %path.display(),
        clients = records.len(),
        asleep = records.iter().filter(|r| r.sleep.is_some()).count(),
        "mqtt-sn gateway state restored"
    );
    Ok((records, opened.store))
}

/// The gateway's changes, into its database.
struct StoredState(GatewayStore);

impl GatewayPersistence for StoredState {
    fn record(&mut self, op: &PersistOp) -> std::io::Result<()> {
        self.0.apply(op).map_err(std::io::Error::other)
    }

    fn commit(&mut self) -> std::io::Result<()> {
        self.0.commit().map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn on_by_default_at_localhost_1884_without_advertising() {
        let s = SnSettings::resolve(SnFileConfig::default(), &SnFlags::default())
            .unwrap()
            .unwrap();
        assert_eq!(s.options.listen, "127.0.0.1:1884".parse().unwrap());
        assert_eq!(s.options.config.t_adv, None);
        assert!(s.options.config.predefined.is_empty());
    }

    #[test]
    fn sn_port_zero_disables_and_flags_override_the_file() {
        let flags = SnFlags {
            port: Some(0),
            ..SnFlags::default()
        };
        assert!(SnSettings::resolve(SnFileConfig::default(), &flags)
            .unwrap()
            .is_none());
        let file = SnFileConfig {
            bind: Some("0.0.0.0:2000".parse().unwrap()),
            predefined: [("a/b".to_owned(), 5)].into_iter().collect(),
            ..SnFileConfig::default()
        };
        let flags = SnFlags {
            port: Some(3000),
            bind: Some("::1".parse().unwrap()),
            predefined: vec!["c/d=6".parse().unwrap(), "a/b=7".parse().unwrap()],
        };
        let s = SnSettings::resolve(file, &flags).unwrap().unwrap();
        assert_eq!(s.options.listen, "[::1]:3000".parse().unwrap());
        let pre: Vec<_> = s.options.config.predefined.into_iter().collect();
        assert_eq!(pre, [(6, "c/d".to_owned()), (7, "a/b".to_owned())]);
    }

    #[test]
    fn bad_predefined_entries_are_refused() {
        assert!("nothing".parse::<Predefined>().is_err());
        assert!("a=0".parse::<Predefined>().is_err());
        assert!("a=65535".parse::<Predefined>().is_err());
        assert!("=3".parse::<Predefined>().is_err());
        let flags = SnFlags {
            predefined: vec!["a=1".parse().unwrap(), "b=1".parse().unwrap()],
            ..SnFlags::default()
        };
        assert!(SnSettings::resolve(SnFileConfig::default(), &flags).is_err());
    }
}
