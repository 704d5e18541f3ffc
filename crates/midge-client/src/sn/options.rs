//! [`SnConnectOptions`]: the gateway address and the MQTT-SN client
//! settings, and the parser for `udp://host:port` addresses.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use midge_session::sn::client::{SnClientConfig, SnWill};
use midge_sn_codec::QoS;

use super::SnClientError;

/// The MQTT-SN port `midged` and `midge gateway` listen on by default.
pub const DEFAULT_SN_PORT: u16 = 1884;

/// Messages waiting in [`SnMessages`](super::SnMessages) by default.
const DEFAULT_MAX_BUFFERED: usize = 1024;

/// Where the gateway is and how to talk to it. Start from
/// [`SnConnectOptions::new`]; the `with_*` methods cover the usual settings
/// and [`SnConnectOptions::config_mut`] reaches every field of the state
/// machine's configuration.
#[derive(Debug, Clone)]
pub struct SnConnectOptions {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) bind: Option<SocketAddr>,
    pub(crate) broadcast: Option<SocketAddr>,
    pub(crate) max_buffered: usize,
    pub(crate) config: SnClientConfig<SocketAddr>,
}

impl SnConnectOptions {
    /// Options for the gateway at `gateway` (`host:port`, `udp://host:port`,
    /// `[v6]:port`, or `host` for port 1884) with this client id.
    ///
    /// # Errors
    /// [`SnClientError::Address`] or [`SnClientError::UnsupportedScheme`]
    /// when `gateway` cannot be read. The client id is checked by
    /// [`SnClient::open`](super::SnClient::open).
    pub fn new(gateway: &str, client_id: impl Into<String>) -> Result<Self, SnClientError> {
        let (host, port) = parse_gateway(gateway)?;
        Ok(Self {
            host,
            port,
            bind: None,
            broadcast: None,
            max_buffered: DEFAULT_MAX_BUFFERED,
            config: SnClientConfig::new(client_id),
        })
    }

    /// The gateway's host, as given.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The gateway's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Keep alive in seconds (0: no PINGREQ). Default 60.
    #[must_use]
    pub fn with_keep_alive(mut self, secs: u16) -> Self {
        self.config.keep_alive = secs;
        self
    }

    /// CleanSession flag of CONNECT. Default `true`.
    #[must_use]
    pub fn with_clean_session(mut self, clean: bool) -> Self {
        self.config.clean_session = clean;
        self
    }

    /// A will the gateway publishes if it loses the client; sent when the
    /// gateway prompts for it after CONNECT.
    #[must_use]
    pub fn with_will(
        mut self,
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Self {
        let mut will = SnWill::new(topic, payload);
        will.qos = qos;
        will.retain = retain;
        self.config.will = Some(will);
        self
    }

    /// A pre-defined topic id known to the gateway too (spec 6.7), so that
    /// messages on it arrive named.
    #[must_use]
    pub fn with_predefined(mut self, id: u16, name: impl Into<String>) -> Self {
        self.config.predefined.push((id, name.into()));
        self
    }

    /// T_retry and N_retry (spec 6.13): how long a request waits for its
    /// answer, and how many times it is sent again before the gateway is
    /// taken for lost. Defaults 10 s and 3. A zero `t_retry` is refused by
    /// [`SnClient::open`](super::SnClient::open).
    #[must_use]
    pub fn with_retry(mut self, t_retry: Duration, n_retry: u8) -> Self {
        self.config.t_retry = t_retry;
        self.config.n_retry = n_retry;
        self
    }

    /// The local address to bind (default: the unspecified address of the
    /// gateway's family, port 0).
    #[must_use]
    pub fn with_bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Where broadcast datagrams (SEARCHGW) go; without it they are not
    /// sent. Default none.
    #[must_use]
    pub fn with_broadcast(mut self, addr: SocketAddr) -> Self {
        self.broadcast = Some(addr);
        self
    }

    /// Most messages waiting in [`SnMessages`](super::SnMessages); a message
    /// that arrives when that many wait is dropped and counted in
    /// [`SnClientStats::messages_dropped`](super::SnClientStats). Default
    /// 1024, at least 1.
    #[must_use]
    pub fn with_max_buffered_messages(mut self, max: usize) -> Self {
        self.max_buffered = max.max(1);
        self
    }

    /// The state machine's configuration, for the settings without a
    /// `with_*` method (T_WAIT, table limits, seed, ...). Its `gateways`
    /// list gets the gateway of these options in front at `open`.
    pub fn config_mut(&mut self) -> &mut SnClientConfig<SocketAddr> {
        &mut self.config
    }
}

/// Reads `udp://host:port`, `host:port`, `[v6]:port`, `[v6]`, a bare IPv6
/// address or `host` (port 1884).
pub(crate) fn parse_gateway(text: &str) -> Result<(String, u16), SnClientError> {
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("udp") => rest,
        Some((scheme, _)) => return Err(SnClientError::UnsupportedScheme(scheme.to_owned())),
        None => text,
    };
    let bad = || SnClientError::Address(text.to_owned());
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        let port = match after {
            "" => DEFAULT_SN_PORT,
            _ => after
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?,
        };
        return Ok((host.to_owned(), port));
    }
    match rest.matches(':').count() {
        0 => Ok((rest.to_owned(), DEFAULT_SN_PORT)),
        1 => {
            let (host, port) = rest.split_once(':').ok_or_else(bad)?;
            if host.is_empty() {
                return Err(bad());
            }
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        // A bare IPv6 address: no port.
        _ => Ok((rest.to_owned(), DEFAULT_SN_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_address_forms() {
        let ok = |t: &str| parse_gateway(t).unwrap();
        assert_eq!(ok("udp://gw:2000"), ("gw".to_owned(), 2000));
        assert_eq!(ok("UDP://gw"), ("gw".to_owned(), 1884));
        assert_eq!(ok("127.0.0.1:1885"), ("127.0.0.1".to_owned(), 1885));
        assert_eq!(ok("gw"), ("gw".to_owned(), 1884));
        assert_eq!(ok("[::1]:7"), ("::1".to_owned(), 7));
        assert_eq!(ok("udp://[::1]"), ("::1".to_owned(), 1884));
        assert_eq!(ok("::1"), ("::1".to_owned(), 1884));
    }

    #[test]
    fn bad_gateway_addresses_are_refused() {
        for text in [
            "", "udp://", "gw:", "gw:70000", ":1884", "[]:1", "[::1", "[::1]x", "gw/x",
        ] {
            assert!(
                matches!(parse_gateway(text), Err(SnClientError::Address(_))),
                "{text}"
            );
        }
        assert_eq!(
            parse_gateway("mqtt://gw:1883"),
            Err(SnClientError::UnsupportedScheme("mqtt".to_owned()))
        );
    }
}
