//! [`SnClientConfig`]: what shapes the CONNECT, the timers and counters of
//! MQTT-SN section 7.2, and the limit of every table the machine keeps.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use midge_sn_codec::QoS;
use midge_time::Duration;

/// The will the gateway publishes for this client if it loses it; sent in
/// answer to WILLTOPICREQ and WILLMSGREQ (spec 6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnWill {
    /// Will topic name (no wildcards).
    pub topic: String,
    /// Will message.
    pub payload: Bytes,
    /// QoS the gateway publishes the will with.
    pub qos: QoS,
    /// Whether the will is retained.
    pub retain: bool,
}

impl SnWill {
    /// A will on `topic` with `payload`, QoS 0, not retained.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
        }
    }
}

/// How an address `A` is written in, and read from, the GwAdd field of a
/// GWINFO sent by a client (spec 5.4.3, 6.1). Without it the client neither
/// uses GWINFO relayed by other clients nor answers their SEARCHGW.
pub struct GwAddCodec<A> {
    /// Writes an address as GwAdd octets.
    pub encode: fn(&A) -> Bytes,
    /// Reads GwAdd octets; `None` if they are not an address.
    pub decode: fn(&[u8]) -> Option<A>,
}

impl<A> Clone for GwAddCodec<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for GwAddCodec<A> {}

impl<A> core::fmt::Debug for GwAddCodec<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("GwAddCodec")
    }
}

impl<A> PartialEq for GwAddCodec<A> {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::fn_addr_eq(self.encode, other.encode)
            && core::ptr::fn_addr_eq(self.decode, other.decode)
    }
}

impl<A> Eq for GwAddCodec<A> {}

/// Client settings. Start from [`SnClientConfig::new`] and adjust the public
/// fields; [`SnClient::new`](super::SnClient::new) checks the result.
///
/// `A` is the caller's datagram address type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnClientConfig<A> {
    /// Client id, 1 to 23 octets of UTF-8 (spec 5.4.4 says 1 to 23
    /// characters; octets is the reading every gateway accepts).
    pub client_id: String,
    /// Keep alive in seconds, sent in CONNECT; 0 turns PINGREQ off. Default 60.
    pub keep_alive: u16,
    /// CleanSession flag of CONNECT (spec 6.3). Default `true`.
    pub clean_session: bool,
    /// Will, prompted for by the gateway after CONNECT. Default none.
    pub will: Option<SnWill>,
    /// T_retry: how long a unicast request waits for its answer before it is
    /// sent again (spec 6.13). Default 10 s (spec 7.2: 10–15 s).
    pub t_retry: Duration,
    /// N_retry: how many times a request is sent again before the gateway is
    /// taken for lost (spec 6.13). Default 3 (spec 7.2: 3–5).
    pub n_retry: u8,
    /// T_WAIT: back-off after a "rejected: congestion" answer (spec 6.5, 6.6,
    /// 6.9). Default 5 min (spec 7.2: more than 5 min).
    pub t_wait: Duration,
    /// T_SEARCHGW: upper bound of the random delay before SEARCHGW (spec 6.1);
    /// also the first wait for an answer, doubled at each new attempt.
    /// Default 5 s (spec 7.2).
    pub t_searchgw: Duration,
    /// How many SEARCHGW are sent in one search before it is given up.
    /// Default 4.
    pub searchgw_attempts: u8,
    /// Broadcast radius of SEARCHGW (spec 5.4.2). Default 1.
    pub radius: u8,
    /// T_GWINFO: upper bound of the random delay before this client answers
    /// another client's SEARCHGW on a gateway's behalf (spec 6.1). Default 5 s.
    pub t_gwinfo: Duration,
    /// The GwAdd format of the network; see [`GwAddCodec`]. Default none.
    pub gw_add_codec: Option<GwAddCodec<A>>,
    /// N_ADV: a gateway that announced itself with ADVERTISE is dropped from
    /// the list when this many ADVERTISE periods pass without one (spec 6.1).
    /// Default 2 (spec 7.2: 2–3); at least 1.
    pub n_adv: u8,
    /// Seed of the machine's pseudo-random generator (SEARCHGW jitter).
    pub seed: u64,
    /// Most commands held at once (publishes, registrations, subscribe
    /// requests, will updates, sleep), the one awaiting its answer included.
    /// At the limit commands fail with `QueueFull`; `disconnect` is always
    /// taken. Default 64.
    pub max_queued: usize,
    /// Most entries of the topic id ↔ name table learned from REGACK, SUBACK
    /// and the gateway's REGISTER; at the limit the oldest is forgotten.
    /// At least 1. Default 64.
    pub max_topics: usize,
    /// Most gateways in the list. Default 8.
    pub max_gateways: usize,
    /// Most inbound QoS 2 message ids awaiting PUBREL. At least 1. Default 16.
    pub max_inbound_qos2: usize,
    /// Most undrained events; an inbound PUBLISH that arrives at the limit is
    /// left unacknowledged (the gateway sends it again). At least 1.
    /// Default 256.
    pub max_events: usize,
    /// Pre-defined topic ids known to both sides (spec 6.7): id and name.
    pub predefined: Vec<(u16, String)>,
    /// Gateways known in advance: GwId and address. They never expire.
    pub gateways: Vec<(u8, A)>,
}

impl<A> SnClientConfig<A> {
    /// The defaults, with this client id.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            keep_alive: 60,
            clean_session: true,
            will: None,
            t_retry: Duration::from_secs(10),
            n_retry: 3,
            t_wait: Duration::from_secs(300),
            t_searchgw: Duration::from_secs(5),
            searchgw_attempts: 4,
            radius: 1,
            t_gwinfo: Duration::from_secs(5),
            gw_add_codec: None,
            n_adv: 2,
            seed: 0x5EED_5A17_u64,
            max_queued: 64,
            max_topics: 64,
            max_gateways: 8,
            max_inbound_qos2: 16,
            max_events: 256,
            predefined: Vec::new(),
            gateways: Vec::new(),
        }
    }
}
