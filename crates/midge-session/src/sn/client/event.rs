//! What the SN client tells its caller: [`SnEvent`], the topic forms, the
//! ids and where a datagram goes.

use alloc::string::String;

use bytes::Bytes;
use midge_sn_codec::{PublishQoS, QoS, ReturnCode, TopicId};
use midge_time::Instant;

pub use crate::event::{DeliveryId, RequestId};

/// A topic as the MQTT-SN client names it (spec 6.7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SnTopic {
    /// A topic name. To publish, the machine registers it first (spec 6.5);
    /// to subscribe it may hold wildcards.
    Name(String),
    /// A pre-defined topic id, known to both sides in advance.
    Predefined(u16),
    /// A two-octet short topic name, carried in place of an id.
    Short([u8; 2]),
}

/// Where a datagram must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination<A> {
    /// Broadcast into the network, no further than `radius` hops (SEARCHGW).
    Broadcast {
        /// Broadcast radius to hand to the network layer (spec 6.1).
        radius: u8,
    },
    /// To this address.
    Unicast(A),
}

/// One datagram written by [`SnClient::poll_transmit`](super::SnClient::poll_transmit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub to: Destination<A>,
    /// Octets appended to the caller's buffer.
    pub len: usize,
}

/// Why the client is no longer connected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnDisconnectReason {
    /// The caller's `disconnect` completed (or the gateway never answered it).
    ClientDisconnect,
    /// The gateway sent DISCONNECT on its own (spec 6.12); the caller should
    /// connect again.
    GatewayDisconnect,
    /// CONNACK refused the connection with this code.
    Refused(ReturnCode),
    /// N_retry was exhausted and no other gateway could be tried (spec 6.13).
    GatewayLost,
}

/// Something the caller must learn. Drained with
/// [`SnClient::poll_event`](super::SnClient::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnEvent<A> {
    /// A gateway not yet in the list answered (GWINFO) or advertised itself
    /// (ADVERTISE).
    GatewayFound {
        /// Its GwId.
        gw_id: u8,
        /// Its address.
        address: A,
    },
    /// A gateway known only from ADVERTISE stayed silent for N_ADV periods
    /// and left the list (spec 6.1).
    GatewayExpired {
        /// Its GwId.
        gw_id: u8,
        /// Its address.
        address: A,
    },
    /// A search sent every SEARCHGW it was allowed and heard no gateway.
    SearchFailed,
    /// The gateway accepted CONNECT.
    Connected {
        /// Its address.
        gateway: A,
    },
    /// The gateway answered "rejected: congestion"; the refused request goes
    /// out again at `retry_at` (T_WAIT later).
    Congestion {
        /// When the request is sent again.
        retry_at: Instant,
    },
    /// A topic name was registered (explicitly or before a publish).
    Registered {
        /// The id `register` returned, if the registration was asked for.
        id: Option<RequestId>,
        /// The name.
        topic: String,
        /// The id the gateway assigned.
        topic_id: TopicId,
    },
    /// The gateway refused a registration asked for by `register`.
    RegisterFailed {
        /// The id `register` returned.
        id: RequestId,
        /// Why.
        code: ReturnCode,
    },
    /// A publish is done: QoS −1 and 0 once written, QoS 1 at PUBACK, QoS 2
    /// at PUBCOMP.
    Delivered {
        /// The id `publish` returned.
        id: DeliveryId,
    },
    /// A publish that will not be done: its registration or the publish
    /// itself was refused, or the topic table had no room.
    Dropped {
        /// The id `publish` returned.
        id: DeliveryId,
    },
    /// An application message from the gateway. QoS 2 messages are reported
    /// once however often the gateway sends them.
    Message {
        /// The topic: its name when the id is known, else the id or short name.
        topic: SnTopic,
        /// The payload.
        payload: Bytes,
        /// Its QoS.
        qos: PublishQoS,
        /// Its retain flag.
        retain: bool,
    },
    /// The gateway accepted a `subscribe`.
    Subscribed {
        /// The id `subscribe` returned.
        id: RequestId,
        /// The granted QoS.
        qos: QoS,
        /// The topic id for a name without wildcards, else 0x0000 (spec 6.9).
        topic_id: TopicId,
    },
    /// The gateway refused a `subscribe`.
    SubscribeRejected {
        /// The id `subscribe` returned.
        id: RequestId,
        /// Why.
        code: ReturnCode,
    },
    /// The gateway answered an `unsubscribe`.
    Unsubscribed {
        /// The id `unsubscribe` returned.
        id: RequestId,
    },
    /// The gateway answered a will update (WILLTOPICRESP / WILLMSGRESP).
    WillUpdated {
        /// The id the update returned.
        id: RequestId,
        /// The gateway's code.
        code: ReturnCode,
    },
    /// The gateway acknowledged the sleep request: the client is asleep
    /// (spec 6.14).
    Asleep {
        /// The sleep duration in seconds.
        duration: u16,
    },
    /// The awake period started by `wake_once` is over and the client is
    /// asleep again.
    AwakeDone {
        /// `true` if PINGRESP closed it; `false` if N_retry PINGREQs went
        /// unanswered (spec 6.14).
        complete: bool,
    },
    /// N_retry retransmissions went unanswered: the connection to this
    /// gateway is taken for lost (spec 6.13). If another gateway is known, a
    /// CONNECT to it follows at once.
    GatewayLost {
        /// The gateway's address.
        gateway: A,
    },
    /// The client is not connected any more.
    Disconnected {
        /// Why.
        reason: SnDisconnectReason,
    },
}
