//! [`SnClientError`]: everything the async MQTT-SN client can fail with.

use midge_session::sn::client::{SnDisconnectReason, SnUsageError};
use midge_sn_codec::ReturnCode;

/// Why an MQTT-SN client call, or the answer it waited for, failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnClientError {
    /// The gateway address could not be read (`host:port`,
    /// `udp://host:port`, `[v6]:port` or `host`).
    #[error("bad gateway address `{0}`")]
    Address(String),
    /// The address names a transport other than UDP.
    #[error("MQTT-SN runs over udp://, not `{0}`")]
    UnsupportedScheme(String),
    /// The gateway's host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Unresolved {
        /// The host name.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The UDP socket failed.
    #[error("i/o error: {0}")]
    Io(String),
    /// The state machine refused the command (nothing was sent).
    #[error(transparent)]
    Usage(#[from] SnUsageError),
    /// The gateway refused CONNECT with this code.
    #[error("connection refused by the gateway: {0:?}")]
    Refused(ReturnCode),
    /// The gateway refused a registration, subscription or will update.
    #[error("refused by the gateway: {0:?}")]
    Rejected(ReturnCode),
    /// The gateway stopped answering: every retransmission went unanswered
    /// (spec 6.13).
    #[error("the gateway stopped answering")]
    GatewayLost,
    /// The gateway ended the connection with DISCONNECT.
    #[error("the gateway disconnected the client")]
    GatewayDisconnected,
    /// The connection ended (the application's `disconnect`) before the
    /// answer came.
    #[error("the client is disconnected")]
    Disconnected,
    /// The publish will not be done: its topic registration or the publish
    /// itself was refused.
    #[error("the gateway refused the publish")]
    Dropped,
    /// The client's task has ended: every handle was dropped, or it stopped
    /// after an error.
    #[error("the client has stopped")]
    Closed,
}

impl SnClientError {
    /// The error a waiter gets when the connection ends for `reason`.
    pub(crate) fn from_reason(reason: &SnDisconnectReason) -> Self {
        match reason {
            SnDisconnectReason::Refused(code) => Self::Refused(*code),
            SnDisconnectReason::GatewayLost => Self::GatewayLost,
            SnDisconnectReason::GatewayDisconnect => Self::GatewayDisconnected,
            _ => Self::Disconnected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_disconnect_reason_has_its_error() {
        assert_eq!(
            SnClientError::from_reason(&SnDisconnectReason::Refused(ReturnCode::Congestion)),
            SnClientError::Refused(ReturnCode::Congestion)
        );
        assert_eq!(
            SnClientError::from_reason(&SnDisconnectReason::GatewayLost),
            SnClientError::GatewayLost
        );
        assert_eq!(
            SnClientError::from_reason(&SnDisconnectReason::GatewayDisconnect),
            SnClientError::GatewayDisconnected
        );
        assert_eq!(
            SnClientError::from_reason(&SnDisconnectReason::ClientDisconnect),
            SnClientError::Disconnected
        );
    }
}
