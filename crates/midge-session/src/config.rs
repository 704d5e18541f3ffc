//! [`ClientConfig`]: everything that shapes the CONNECT and the limits of the machine.

use alloc::string::String;

use bytes::Bytes;
use midge_codec::{LastWill, Protocol};
use midge_time::Duration;

/// Client settings. Start from [`ClientConfig::new`] and adjust with the
/// `with_*` methods or the public fields; [`Client::new`](crate::Client::new)
/// checks the result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Client identifier. May be empty only with `clean_session = true`
    /// [MQTT-3.1.3-7].
    pub client_id: String,
    /// Start a fresh session and discard it when the connection ends.
    /// Default `true`.
    pub clean_session: bool,
    /// Keep alive in seconds; 0 turns keep alive off. Default 60.
    pub keep_alive: u16,
    /// Will message. Default none.
    pub will: Option<LastWill>,
    /// User name. Default none.
    pub username: Option<String>,
    /// Password; needs a user name. Default none.
    pub password: Option<Bytes>,
    /// Protocol revision. Default MQTT 3.1.1.
    pub protocol: Protocol,
    /// Most outbound QoS 1/2 PUBLISHes awaiting their final acknowledgement at
    /// once (1..=65535). Default 32.
    pub inflight_window: u16,
    /// Most publishes the machine holds before they go out: QoS 1/2 ones
    /// waiting behind a full window (or for a connection) and QoS 0 ones not
    /// yet written by `poll_transmit`, counted together. At the limit
    /// `publish` fails with `QueueFull` (a QoS 1/2 publish that fits in the
    /// window at once is still taken). 0 refuses every QoS 0 publish.
    /// Default 1000.
    pub max_queued: usize,
    /// Most subscribe/unsubscribe requests awaiting their answer. Default 64.
    pub max_pending_requests: usize,
    /// Largest inbound packet accepted, fixed header included. Default 1 MiB.
    pub max_packet_size: usize,
    /// How long to wait for PINGRESP after PINGREQ. `None` (default) means the
    /// keep alive interval; never less than one second.
    pub ping_timeout: Option<Duration>,
    /// How long to wait for CONNACK after CONNECT. Default 30 s.
    pub connack_timeout: Duration,
    /// Inbound QoS 1/2 messages are acknowledged only when the application
    /// calls [`Client::ack`](crate::Client::ack). Default `false`.
    pub manual_acks: bool,
}

impl ClientConfig {
    /// The defaults, with this client id.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            clean_session: true,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
            protocol: Protocol::V3_1_1,
            inflight_window: 32,
            max_queued: 1000,
            max_pending_requests: 64,
            max_packet_size: 1024 * 1024,
            ping_timeout: None,
            connack_timeout: Duration::from_secs(30),
            manual_acks: false,
        }
    }

    /// Sets `clean_session`.
    #[must_use]
    pub fn with_clean_session(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    /// Sets `keep_alive` (seconds, 0 = off).
    #[must_use]
    pub fn with_keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    /// Sets the will message.
    #[must_use]
    pub fn with_will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }

    /// Sets user name and (optionally) password.
    #[must_use]
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: Option<Bytes>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = password;
        self
    }

    /// Sets the protocol revision.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets the inflight window.
    #[must_use]
    pub fn with_inflight_window(mut self, window: u16) -> Self {
        self.inflight_window = window;
        self
    }

    /// Sets the queue limit behind the window.
    #[must_use]
    pub fn with_max_queued(mut self, max: usize) -> Self {
        self.max_queued = max;
        self
    }

    /// Sets the ping timeout.
    #[must_use]
    pub fn with_ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = Some(timeout);
        self
    }

    /// Sets the CONNACK timeout.
    #[must_use]
    pub fn with_connack_timeout(mut self, timeout: Duration) -> Self {
        self.connack_timeout = timeout;
        self
    }

    /// Turns manual acknowledgement on or off.
    #[must_use]
    pub fn with_manual_acks(mut self, manual: bool) -> Self {
        self.manual_acks = manual;
        self
    }

    /// Sets the largest inbound packet.
    #[must_use]
    pub fn with_max_packet_size(mut self, max: usize) -> Self {
        self.max_packet_size = max;
        self
    }

    /// The keep alive interval, if on.
    pub(crate) fn keep_alive_interval(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| Duration::from_secs(u64::from(self.keep_alive)))
    }

    /// The effective ping timeout.
    pub(crate) fn effective_ping_timeout(&self) -> Duration {
        let t = self
            .ping_timeout
            .unwrap_or_else(|| Duration::from_secs(u64::from(self.keep_alive)));
        t.max(Duration::from_secs(1))
    }
}
