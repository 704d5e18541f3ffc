//! The `[metrics]` and `[sys]` tables: the Prometheus endpoint
//! (`midge_server::MetricsEndpoint`) and the `$SYS/broker/...` interval.
//!
//! Who may read `$SYS` topics is the `[auth]` ACL's decision, as for any
//! topic: with an ACL file, only users given `topic read $SYS/#` (or a
//! narrower filter) may subscribe to them.

use std::net::SocketAddr;
use std::time::Duration;

use midge_server::{MetricsEndpoint, ServerHandle};
use midge_tokio::{Runtime, TokioRuntime};
use serde::Deserialize;

use crate::units::HumaneDuration;

/// The `$SYS` interval when the file does not set one.
pub(crate) const DEFAULT_SYS_INTERVAL: Duration = Duration::from_secs(10);

/// Table `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Where `GET /metrics` is served; absent: no endpoint.
    #[serde(default)]
    pub(crate) listen: Option<SocketAddr>,
}

/// Table `[sys]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SysConfig {
    /// How often the `$SYS/broker/...` topics are published; `"0s"` turns
    /// them off.
    #[serde(default)]
    pub(crate) interval: Option<HumaneDuration>,
}

impl SysConfig {
    /// The interval, default applied.
    pub(crate) fn interval(&self) -> Duration {
        self.interval.map_or(DEFAULT_SYS_INTERVAL, |d| d.0)
    }
}

/// Binds the endpoint and serves it in a task of its own until the server
/// shuts down; returns the bound address (logged, for a port 0).
pub(crate) async fn serve(addr: SocketAddr, handle: &ServerHandle) -> Result<SocketAddr, String> {
    let rt = TokioRuntime::current();
    let endpoint = MetricsEndpoint::bind(rt.clone(), addr, handle)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let local = endpoint.local_addr();
    rt.spawn(endpoint.run());
    // Tests and scripts read this line to learn a port chosen with 0.
    tracing::info!("metrics at http://{local}/metrics");
    Ok(local)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tables_parse_and_default() {
        let metrics: MetricsConfig = toml::from_str("listen = \"127.0.0.1:9090\"").unwrap();
        assert_eq!(metrics.listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(MetricsConfig::default().listen, None);
        let sys: SysConfig = toml::from_str("interval = \"0s\"").unwrap();
        assert_eq!(sys.interval(), Duration::ZERO);
        assert_eq!(SysConfig::default().interval(), DEFAULT_SYS_INTERVAL);
        assert!(toml::from_str::<SysConfig>("every = \"1s\"").is_err());
        assert!(toml::from_str::<MetricsConfig>("listen = \"nowhere\"").is_err());
    }
}
