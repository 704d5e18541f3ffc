//! [`ServerConfig`]: every limit the per-connection machine enforces, with its
//! behaviour at the limit.

use alloc::string::String;

use midge_time::Duration;

/// What [`ServerSession::deliver`](crate::ServerSession::deliver) does with a
/// QoS 1 or 2 message when the session's queue is full. QoS 0 messages are
/// always dropped at a full queue, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Refuse the new message: `deliver` answers
    /// [`DeliverOutcome::Dropped`](crate::DeliverOutcome::Dropped) and the
    /// router may apply back-pressure. Counted in
    /// [`Stats::dropped_queue_full`](crate::Stats::dropped_queue_full).
    #[default]
    DropNewest,
    /// Evict the oldest queued messages until the new one fits; `deliver`
    /// answers
    /// [`DeliverOutcome::QueuedEvictedOldest`](crate::DeliverOutcome::QueuedEvictedOldest)
    /// with the number evicted, which the router reports as drops. Each eviction is counted in
    /// [`Stats::dropped_oldest`](crate::Stats::dropped_oldest).
    DropOldest,
}

/// What the [`Router`](crate::Router) does about a subscriber whose session
/// queue fills faster than its client reads (set in
/// [`RouterConfig::slow_subscriber`](crate::RouterConfig::slow_subscriber)).
///
/// Either way memory stays bounded: a session never queues beyond
/// [`ServerConfig::max_queued_messages`] and
/// [`ServerConfig::max_queued_bytes`], and every message a session refuses
/// is counted and reported as
/// [`Action::DeliveryDropped`](crate::Action::DeliveryDropped), for the
/// adapter to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowSubscriberPolicy {
    /// Slow the publishers down: when a delivery leaves a session above its
    /// high-water mark ([`ServerConfig::high_water_percent`]), the router
    /// asks the adapter to stop reading from the publisher that sent it
    /// ([`Action::PausePublisher`](crate::Action::PausePublisher)), and to
    /// read again ([`Action::ResumePublisher`](crate::Action::ResumePublisher))
    /// once every congested session it fed has drained to its low-water
    /// mark. This applies to QoS 0 messages as well: a congested session
    /// pauses whoever feeds it, whatever the QoS. The gap between the high
    /// water mark and the hard limits absorbs what a paused publisher had
    /// already sent; beyond the hard limits the session still drops.
    #[default]
    BackPressure,
    /// Never pause anyone: at the hard limits the session drops by its
    /// [`OverflowPolicy`], and the router counts and reports each drop.
    Drop,
}

/// The configuration of one [`ServerSession`](crate::ServerSession).
///
/// Every table the machine keeps has a limit here, and every limit has a
/// defined, observable behaviour (a close with a named [`ProtocolError`], a
/// refusal code, or a counted drop), so that hostile input cannot make a
/// session grow without bound.
///
/// [`ProtocolError`]: crate::ProtocolError
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest whole packet accepted from the client, fixed header included.
    /// A larger packet closes the connection
    /// ([`DecodeError::PacketTooLarge`](midge_codec::DecodeError::PacketTooLarge)).
    /// While a CONNECT awaits the router's decision, at most this many
    /// unprocessed bytes are buffered; more closes the connection
    /// ([`ProtocolError::TooMuchInputBeforeConnAck`](crate::ProtocolError::TooMuchInputBeforeConnAck)).
    /// Default 1 MiB.
    pub max_packet_size: usize,
    /// Outbound QoS 1 and 2 messages that may await the client's
    /// acknowledgement at once; more wait in the queue. Clamped to 1..=65535.
    /// Default 32.
    pub max_inflight: usize,
    /// Messages waiting for the inflight window, the transport or CONNACK.
    /// At the limit, `overflow_policy` applies. Default 1000.
    pub max_queued_messages: usize,
    /// Topic and payload bytes of the queued messages. At the limit,
    /// `overflow_policy` applies. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// Encoded bytes not yet taken by `poll_transmit` beyond which delivered
    /// messages queue instead of being encoded, so that a client that reads
    /// slowly fills its own queue (with its limits) rather than memory. A
    /// message is always encoded when less than this waits, so one larger
    /// than the limit still goes out. At least 1. Default 1 MiB.
    pub max_unsent_bytes: usize,
    /// What happens to a QoS 1/2 message at a full queue. Default
    /// [`OverflowPolicy::DropNewest`].
    pub overflow_policy: OverflowPolicy,
    /// The queue's high-water mark, in percent of `max_queued_messages` and
    /// of `max_queued_bytes` (clamped to 100): a session whose queue holds
    /// more messages or bytes than that after a `deliver` reports itself
    /// congested ([`ServerSession::is_above_high_water`](crate::ServerSession::is_above_high_water)).
    /// Default 50.
    pub high_water_percent: u8,
    /// The queue's low-water mark, in percent of the same limits (at most
    /// `high_water_percent`): a congested session whose queue drains to
    /// this level emits [`Event::Drained`](crate::Event::Drained) once.
    /// Default 25.
    pub low_water_percent: u8,
    /// Subscriptions one client may hold; a SUBSCRIBE filter beyond it is
    /// answered with the failure code 0x80 without reaching the router.
    /// Default 1000.
    pub max_subscriptions_per_client: usize,
    /// Longest client identifier accepted, in bytes; a longer one is refused
    /// with CONNACK 0x02 [MQTT-3.1.3-9]. Default 65535 (any id the wire can
    /// carry).
    pub max_client_id_len: usize,
    /// How long to wait for CONNECT after the transport opened; then the
    /// session closes with [`CloseReason::ConnectTimeout`](crate::CloseReason::ConnectTimeout).
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// The keep-alive grace, in percent of the client's keep alive: a client
    /// silent for this long is dropped. The specification asks for one and a
    /// half times [MQTT-3.1.2-24], so the default is 150; values below 100 are
    /// treated as 100.
    pub keep_alive_percent: u16,
    /// Whether a zero-length client id is accepted (with clean session 1) and
    /// replaced by a generated one [MQTT-3.1.3-6]. When false it is refused
    /// with CONNACK 0x02 [MQTT-3.1.3-9]. Default true.
    pub allow_zero_length_client_id: bool,
    /// The prefix of generated client ids; the rest is the session's
    /// `id_seed` in 16 hex digits. Default `"midge-"`.
    pub client_id_prefix: String,
    /// When true, an inbound QoS 1/2 PUBLISH is handed up with an
    /// [`AckToken`](crate::AckToken) and its PUBACK/PUBREC leaves only when
    /// the router calls [`ServerSession::ack`](crate::ServerSession::ack)
    /// (for example after persisting it). Acknowledgements still leave in the
    /// order their PUBLISH packets arrived. Default false.
    pub ack_after_route: bool,
    /// Inbound QoS 1/2 publications awaiting [`ServerSession::ack`](crate::ServerSession::ack)
    /// when `ack_after_route` is on; one more closes the connection
    /// ([`ProtocolError::TooManyUnacknowledged`](crate::ProtocolError::TooManyUnacknowledged)).
    /// Default 64.
    pub max_inbound_unacked: usize,
    /// Inbound QoS 2 packet ids awaiting the client's PUBREL; one more closes
    /// the connection ([`ProtocolError::TooManyInboundQos2`](crate::ProtocolError::TooManyInboundQos2)).
    /// The client's PUBRELs arrive on the same connection, so reading
    /// cannot simply stop at this limit: it must sit above the inflight
    /// windows clients use (mosquitto_pub and paho 20, rumqttc 100). Default
    /// 1024, at most a few KiB per connection.
    pub max_inbound_qos2: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_packet_size: 1024 * 1024,
            max_inflight: 32,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_unsent_bytes: 1024 * 1024,
            overflow_policy: OverflowPolicy::DropNewest,
            high_water_percent: 50,
            low_water_percent: 25,
            max_subscriptions_per_client: 1000,
            max_client_id_len: 0xFFFF,
            connect_timeout: Duration::from_secs(10),
            keep_alive_percent: 150,
            allow_zero_length_client_id: true,
            client_id_prefix: String::from("midge-"),
            ack_after_route: false,
            max_inbound_unacked: 64,
            max_inbound_qos2: 1024,
        }
    }
}

/// `percent` (clamped to 100) of `limit`, rounded down, without overflow.
pub(crate) fn percent_of(limit: usize, percent: u8) -> usize {
    let percent = usize::from(percent.min(100));
    (limit / 100)
        .saturating_mul(percent)
        .saturating_add((limit % 100).saturating_mul(percent) / 100)
}
