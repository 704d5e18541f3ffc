//! [`ConnectOptions`] and [`Reconnect`]: where to connect and how to behave.

use std::time::Duration;

use bytes::Bytes;
use midge_codec::{LastWill, Protocol};
use midge_runtime::BrokerUrl;
use midge_session::ClientConfig;

use crate::transport::TlsOptions;
use crate::ClientError;

/// Automatic reconnection: after a lost connection the client waits a
/// jittered, exponentially growing delay and connects again.
///
/// The n-th consecutive failed attempt waits a random time between half and
/// all of `min_delay * 2^n`, capped at `max_delay`. A connection the broker
/// accepts resets the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Reconnect at all. Default `true`. When `false`, the first lost
    /// connection ends the client.
    pub enabled: bool,
    /// The first delay. Default 250 ms.
    pub min_delay: Duration,
    /// The longest delay. Default 30 s.
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            enabled: true,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl Reconnect {
    /// Reconnection turned off.
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The delay before attempt number `failures + 1` (jittered; `failures`
    /// is how many attempts in a row have failed).
    #[must_use]
    pub fn delay(&self, failures: u32) -> Duration {
        let max = self.max_delay.max(self.min_delay);
        let base = self
            .min_delay
            .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(max)
            .min(max);
        let micros = u64::try_from(base.as_micros()).unwrap_or(u64::MAX);
        let jittered = fastrand::u64(micros / 2..=micros);
        Duration::from_micros(jittered)
    }
}

/// How to connect: the broker address, the MQTT session settings and the
/// behaviour of the async client. Start from [`ConnectOptions::new`] and
/// adjust with the `with_*` methods or the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The broker: `mqtt://` (TCP), `mqtts://` (TLS), `ws://` (WebSocket)
    /// or `wss://` (WebSocket over TLS).
    pub url: BrokerUrl,
    /// TLS settings for `mqtts://` and `wss://`; `None` means the default
    /// [`TlsOptions`] (the system's certificate authorities, no client
    /// certificate). Ignored by the other schemes.
    pub tls: Option<TlsOptions>,
    /// The MQTT session: client id, clean session, keep alive, will,
    /// credentials, protocol, inflight window, queue limits. The client
    /// turns `manual_acks` on whatever is set here (see the crate docs on
    /// flow control) and uses `connect_timeout` as the CONNACK timeout.
    pub config: ClientConfig,
    /// Automatic reconnection.
    pub reconnect: Reconnect,
    /// Longest time for one connection attempt: TCP connect and CONNACK
    /// together. Default 10 s.
    pub connect_timeout: Duration,
    /// Most incoming messages waiting for the application in
    /// [`Messages`](crate::Messages). Default 1000. See the crate docs on
    /// flow control for what happens at the limit.
    pub max_buffered_messages: usize,
}

impl ConnectOptions {
    /// Options for `url` (`mqtt://host:port`, `host:port` or `host`) with
    /// this client id and every default.
    ///
    /// # Errors
    /// [`ClientError::Url`] when the address does not parse.
    pub fn new(url: &str, client_id: impl Into<String>) -> Result<Self, ClientError> {
        let url: BrokerUrl = url.parse()?;
        Ok(Self::from_url(url, client_id))
    }

    /// Options for an already parsed address.
    pub fn from_url(url: BrokerUrl, client_id: impl Into<String>) -> Self {
        Self {
            url,
            tls: None,
            config: ClientConfig::new(client_id),
            reconnect: Reconnect::default(),
            connect_timeout: Duration::from_secs(10),
            max_buffered_messages: 1000,
        }
    }

    /// Sets the TLS settings (see [`ConnectOptions::tls`]).
    #[must_use]
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Replaces the whole MQTT session configuration.
    #[must_use]
    pub fn with_config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets `clean_session` (default `true`).
    #[must_use]
    pub fn with_clean_session(mut self, clean: bool) -> Self {
        self.config.clean_session = clean;
        self
    }

    /// Sets the keep alive in seconds (0 turns it off; default 60).
    #[must_use]
    pub fn with_keep_alive(mut self, secs: u16) -> Self {
        self.config.keep_alive = secs;
        self
    }

    /// Sets the will message.
    #[must_use]
    pub fn with_will(mut self, will: LastWill) -> Self {
        self.config.will = Some(will);
        self
    }

    /// Sets the user name and, optionally, the password.
    #[must_use]
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: Option<impl Into<Bytes>>,
    ) -> Self {
        self.config.username = Some(username.into());
        self.config.password = password.map(Into::into);
        self
    }

    /// Sets the protocol revision (default MQTT 3.1.1).
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// Sets how many outbound QoS 1/2 messages may await their
    /// acknowledgement at once (default 32).
    #[must_use]
    pub fn with_inflight_window(mut self, window: u16) -> Self {
        self.config.inflight_window = window;
        self
    }

    /// Sets how many publishes may wait to go out before `publish` fails
    /// with `QueueFull`: QoS 1/2 ones behind a full window or for a
    /// connection and QoS 0 ones not yet written, counted together
    /// (default 1000). See [`Client::publish`](crate::Client::publish) on
    /// back-pressure.
    #[must_use]
    pub fn with_max_queued(mut self, max: usize) -> Self {
        self.config.max_queued = max;
        self
    }

    /// Sets automatic reconnection.
    #[must_use]
    pub fn with_reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets the time limit of one connection attempt (default 10 s).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how many incoming messages may wait for the application
    /// (default 1000, at least 1).
    #[must_use]
    pub fn with_max_buffered_messages(mut self, max: usize) -> Self {
        self.max_buffered_messages = max;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_runtime::Scheme;

    #[test]
    fn defaults() {
        let o = ConnectOptions::new("localhost", "c1").unwrap();
        assert_eq!(o.url.scheme, Scheme::Mqtt);
        assert_eq!(o.url.port, 1883);
        assert_eq!(o.config.client_id, "c1");
        assert!(o.reconnect.enabled);
        assert_eq!(o.reconnect.min_delay, Duration::from_millis(250));
        assert_eq!(o.reconnect.max_delay, Duration::from_secs(30));
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        assert_eq!(o.max_buffered_messages, 1000);
    }

    #[test]
    fn bad_url_is_an_error() {
        assert!(matches!(
            ConnectOptions::new("mqtt://", "c"),
            Err(ClientError::Url(_))
        ));
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let r = Reconnect::default();
        for _ in 0..50 {
            let d0 = r.delay(0);
            assert!(d0 >= Duration::from_millis(125) && d0 <= Duration::from_millis(250));
            let d3 = r.delay(3);
            assert!(d3 >= Duration::from_millis(1000) && d3 <= Duration::from_millis(2000));
            let big = r.delay(40);
            assert!(big >= Duration::from_secs(15) && big <= Duration::from_secs(30));
        }
    }
}
