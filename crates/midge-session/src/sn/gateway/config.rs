//! [`GatewayConfig`]: identity, timers and every limit of the gateway.

use alloc::collections::BTreeMap;
use alloc::string::String;

use bytes::Bytes;
use midge_time::Duration;
use midge_topic::validate_topic_name;

use super::error::ConfigError;

/// Gateway settings. Start from [`GatewayConfig::new`] and adjust the public
/// fields; [`Gateway::new`](super::Gateway::new) checks the result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// GwId carried by ADVERTISE and GWINFO (spec 5.3.6).
    pub gateway_id: u8,
    /// Interval between two ADVERTISE broadcasts (T_ADV, spec 6.1); `None`
    /// turns advertising off. Default 15 minutes.
    pub t_adv: Option<Duration>,
    /// The first ADVERTISE goes out at a random instant within this delay
    /// after start, so that gateways started together do not collide.
    /// Default 1 s.
    pub advertise_jitter: Duration,
    /// Broadcast radius handed to the network with ADVERTISE (spec 5.4.2).
    /// Default 0 (whole network).
    pub radius: u8,
    /// Extra time granted over a client's keep-alive or sleep duration before
    /// it is declared lost, in percent, for durations above one minute
    /// (spec 7.2 suggests 10). Default 10.
    pub tolerance_long_percent: u16,
    /// Same for durations of one minute or less (spec 7.2 suggests 50).
    /// Default 50.
    pub tolerance_short_percent: u16,
    /// Retry timer for gateway-to-client messages that expect an answer:
    /// will prompts, REGISTER, PUBLISH QoS 1/2, PUBREL (T_retry, spec 6.13).
    /// Default 10 s.
    pub t_retry: Duration,
    /// Retransmissions before giving up (N_retry); a client that stays silent
    /// is then lost (or, while prompting for its will, forgotten). Default 3.
    pub n_retry: u8,
    /// Most SN clients known at once (connected, asleep, or remembered for a
    /// later session). A CONNECT beyond, when no remembered client can be
    /// evicted, gets CONNACK "rejected: congestion". Default 1024.
    pub max_clients: usize,
    /// Most normal topic ids per client. REGISTER and SUBSCRIBE beyond get
    /// "rejected: congestion"; deliveries needing a new id are dropped.
    /// Default 256.
    pub max_registrations: usize,
    /// Most messages buffered for one client that is asleep or busy with an
    /// earlier delivery (spec 6.14). Further messages are dropped (and
    /// reported). Default 64.
    pub max_buffered: usize,
    /// Most clients in connection setup at once (will prompts or waiting for
    /// the broker). A CONNECT beyond gets "rejected: congestion". Default 64.
    pub max_pending_connects: usize,
    /// Most QoS 1/2 PUBLISH exchanges one client may have open toward the
    /// gateway; beyond, PUBACK "rejected: congestion". Default 8.
    pub max_client_inflight: usize,
    /// Longest client id accepted, in bytes (spec 5.3.1 says 1 to 23
    /// characters; MQTT counts UTF-8 bytes). Default 23.
    pub max_client_id_len: usize,
    /// Largest datagram the gateway sends; a delivery that does not fit is
    /// dropped silently toward the client (spec 6.10) and reported.
    /// Default 1024.
    pub max_datagram: usize,
    /// Most datagrams waiting for `poll_transmit`; beyond, new ones are
    /// dropped and counted. Default 1024.
    pub max_queued_transmits: usize,
    /// Most events waiting for `poll_event`; beyond, the oldest is dropped
    /// and counted. Default 1024.
    pub max_queued_events: usize,
    /// Pre-defined topic ids (spec 6.7): id to topic name, shared by every
    /// client. Default empty.
    pub predefined: BTreeMap<u16, String>,
    /// Keep alive of each MQTT connection to the broker, in seconds. The
    /// gateway pings the broker itself, also while its client sleeps.
    /// Default 60.
    pub broker_keep_alive: u16,
    /// How long a broker connection may take from `BrokerOp::Open` to CONNACK
    /// before the SN client gets "rejected: congestion". Default 30 s.
    pub broker_connect_timeout: Duration,
    /// Most QoS 1/2 publishes queued in one MQTT connection's machine.
    /// Default 32.
    pub broker_max_queued: usize,
    /// User name and password for every broker connection. Default none.
    pub broker_credentials: Option<(String, Option<Bytes>)>,
    /// Client id of the shared broker connection that carries QoS −1
    /// publishes (spec 7.1). Default `"midge-sn-gw-<gateway_id>"`.
    pub minus_one_client_id: String,
    /// Seed of the internal generator (jitter). Default 0.
    pub seed: u64,
}

impl GatewayConfig {
    /// The defaults, with this gateway id.
    pub fn new(gateway_id: u8) -> Self {
        let mut minus_one_client_id = String::from("midge-sn-gw-");
        push_decimal(&mut minus_one_client_id, gateway_id);
        Self {
            gateway_id,
            t_adv: Some(Duration::from_secs(15 * 60)),
            advertise_jitter: Duration::from_secs(1),
            radius: 0,
            tolerance_long_percent: 10,
            tolerance_short_percent: 50,
            t_retry: Duration::from_secs(10),
            n_retry: 3,
            max_clients: 1024,
            max_registrations: 256,
            max_buffered: 64,
            max_pending_connects: 64,
            max_client_inflight: 8,
            max_client_id_len: 23,
            max_datagram: 1024,
            max_queued_transmits: 1024,
            max_queued_events: 1024,
            predefined: BTreeMap::new(),
            broker_keep_alive: 60,
            broker_connect_timeout: Duration::from_secs(30),
            broker_max_queued: 32,
            broker_credentials: None,
            minus_one_client_id,
            seed: 0,
        }
    }

    /// Adds a pre-defined topic id.
    #[must_use]
    pub fn with_predefined(mut self, id: u16, name: impl Into<String>) -> Self {
        self.predefined.insert(id, name.into());
        self
    }

    /// The time a client may stay silent for a declared duration, tolerance
    /// included (spec 7.2).
    pub(crate) fn supervision(&self, secs: u16) -> Duration {
        let percent = if secs > 60 {
            self.tolerance_long_percent
        } else {
            self.tolerance_short_percent
        };
        let micros = u64::from(secs)
            .saturating_mul(1_000_000)
            .saturating_mul(100 + u64::from(percent))
            / 100;
        Duration::from_micros(micros)
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let limits = [
            ("max_clients", self.max_clients),
            ("max_registrations", self.max_registrations),
            ("max_buffered", self.max_buffered),
            ("max_pending_connects", self.max_pending_connects),
            ("max_client_inflight", self.max_client_inflight),
            ("max_client_id_len", self.max_client_id_len),
            ("max_queued_transmits", self.max_queued_transmits),
            ("max_queued_events", self.max_queued_events),
            ("broker_max_queued", self.broker_max_queued),
        ];
        for (name, value) in limits {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        if self.t_retry.is_zero() {
            return Err(ConfigError::ZeroLimit("t_retry"));
        }
        if self.t_adv.is_some_and(|t| t.as_secs() == 0) {
            return Err(ConfigError::ZeroLimit("t_adv"));
        }
        // The smallest datagram must hold a PUBLISH header and topic id.
        if self.max_datagram < 7 {
            return Err(ConfigError::ZeroLimit("max_datagram"));
        }
        for (id, name) in &self.predefined {
            if matches!(*id, 0x0000 | 0xFFFF) {
                return Err(ConfigError::ReservedTopicId(*id));
            }
            if validate_topic_name(name).is_err() {
                return Err(ConfigError::InvalidPredefinedTopic(*id));
            }
        }
        if self.minus_one_client_id.is_empty() {
            return Err(ConfigError::EmptyMinusOneClientId);
        }
        Ok(())
    }
}

fn push_decimal(s: &mut String, n: u8) {
    let digits = [n / 100, (n / 10) % 10, n % 10];
    let mut started = false;
    for (i, d) in digits.into_iter().enumerate() {
        if d != 0 || started || i == 2 {
            started = true;
            s.push(char::from(b'0' + d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sn_7_2_tolerance_is_fifty_percent_up_to_a_minute_and_ten_above() {
        let c = GatewayConfig::new(1);
        assert_eq!(c.supervision(10), Duration::from_secs(15));
        assert_eq!(c.supervision(60), Duration::from_secs(90));
        assert_eq!(c.supervision(100), Duration::from_secs(110));
        assert_eq!(c.supervision(0), Duration::ZERO);
    }

    #[test]
    fn default_minus_one_client_id_names_the_gateway() {
        assert_eq!(GatewayConfig::new(7).minus_one_client_id, "midge-sn-gw-7");
        assert_eq!(
            GatewayConfig::new(200).minus_one_client_id,
            "midge-sn-gw-200"
        );
        assert_eq!(GatewayConfig::new(0).minus_one_client_id, "midge-sn-gw-0");
    }

    #[test]
    fn check_refuses_zero_limits_and_bad_predefined_topics() {
        let mut c = GatewayConfig::new(1);
        assert_eq!(c.check(), Ok(()));
        c.max_buffered = 0;
        assert_eq!(c.check(), Err(ConfigError::ZeroLimit("max_buffered")));
        let c = GatewayConfig::new(1).with_predefined(0xFFFF, "a");
        assert_eq!(c.check(), Err(ConfigError::ReservedTopicId(0xFFFF)));
        let c = GatewayConfig::new(1).with_predefined(5, "a/#");
        assert_eq!(c.check(), Err(ConfigError::InvalidPredefinedTopic(5)));
    }
}
