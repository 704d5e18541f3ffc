//! What the gateway tells its caller, for logging and metrics: [`GatewayEvent`].

use alloc::string::String;

use midge_sn_codec::ReturnCode;

use super::Peer;

/// Something the caller may want to log. Drained with
/// [`Gateway::poll_event`](super::Gateway::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayEvent<A> {
    /// The broker accepted a client's connection and CONNACK went out.
    ClientConnected {
        /// The SN client id.
        client_id: String,
        /// Where it is.
        peer: Peer<A>,
    },
    /// A client's connection ended.
    ClientDisconnected {
        /// The SN client id.
        client_id: String,
        /// Why.
        cause: DisconnectCause,
    },
    /// A client stayed silent past its keep alive or sleep duration, or did
    /// not answer retransmissions (spec 6.13, 6.14); its will was published.
    ClientLost {
        /// The SN client id.
        client_id: String,
    },
    /// A client went to sleep (spec 6.14).
    ClientAsleep {
        /// The SN client id.
        client_id: String,
        /// The announced sleep duration, seconds.
        duration: u16,
    },
    /// A sleeping client woke up to collect its messages (spec 6.14).
    ClientAwake {
        /// The SN client id.
        client_id: String,
    },
    /// A message meant for an SN client was not delivered.
    Dropped {
        /// The client it was for, if any.
        client_id: Option<String>,
        /// Why.
        reason: DropReason,
    },
}

/// Why a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectCause {
    /// The client sent DISCONNECT without duration.
    ClientRequest,
    /// The broker refused the connection, or did not answer in time; the
    /// client got CONNACK with this code.
    Refused(ReturnCode),
    /// The broker connection ended.
    BrokerLinkLost,
    /// The client did not answer the will prompts.
    PromptTimeout,
    /// The remembered record of a disconnected or lost client was dropped
    /// to make room for a new client ([`max_clients`](super::GatewayConfig::max_clients)).
    Evicted,
}

/// Why a message was not delivered to an SN client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The client's buffer ([`max_buffered`](super::GatewayConfig::max_buffered)) is full.
    BufferFull,
    /// No topic id left for the client ([`max_registrations`](super::GatewayConfig::max_registrations)).
    RegistryFull,
    /// The client refused the topic's REGISTER (spec 6.10).
    RegistrationRejected,
    /// The client answered the PUBLISH with a rejection.
    RejectedByClient(ReturnCode),
    /// The message does not fit in [`max_datagram`](super::GatewayConfig::max_datagram) (spec 6.10).
    TooLong,
    /// The client did not acknowledge within N_retry retransmissions.
    RetriesExhausted,
    /// The client's session ended with messages still buffered.
    SessionEnded,
    /// The QoS −1 broker connection could not take it.
    BrokerUnavailable,
    /// The queue of datagrams waiting for `poll_transmit` was full.
    TransmitQueueFull,
}
