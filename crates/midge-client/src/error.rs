//! [`ClientError`]: everything the async client can fail with.

use midge_codec::ConnectReturnCode;
use midge_runtime::{Scheme, UrlError};
use midge_session::{ProtocolError, UsageError};

/// Why a client call, or the client as a whole, failed.
///
/// Errors from a call made on a live client (a bad topic, a full queue) are
/// returned at once and change nothing. Errors that end the client (a refused
/// connection, a connection lost with reconnect off) are returned by every
/// call made afterwards, and by every [`Delivery`](crate::Delivery) and
/// request still waiting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker address did not parse.
    #[error("bad broker address: {0}")]
    Url(#[from] UrlError),
    /// The address names a transport this client cannot speak. Every
    /// [`Scheme`] of this version is supported; the variant stays for
    /// schemes added later.
    #[error("the {0}:// transport is not supported yet")]
    UnsupportedScheme(Scheme),
    /// TLS failed: a certificate or key file that cannot be used, or a
    /// handshake the broker or this client refused (an untrusted, expired
    /// or misnamed server certificate; a client certificate the broker
    /// refused). Carries rustls's reason.
    #[error("tls: {0}")]
    Tls(String),
    /// The WebSocket upgrade failed (the broker answered with an HTTP
    /// error, or did not select the `mqtt` sub-protocol).
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The broker answered CONNECT with a refusal.
    #[error("connection refused: {} ({:#04x})", refusal_text(*.0), *.0 as u8)]
    Refused(ConnectReturnCode),
    /// No address of the broker accepted a TCP connection.
    #[error("cannot reach {host}:{port}: {reason}")]
    Unreachable {
        /// The host as given in the address.
        host: String,
        /// The port.
        port: u16,
        /// The operating system's reason for the last address tried.
        reason: String,
    },
    /// An I/O error on an open connection.
    #[error("i/o error: {0}")]
    Io(String),
    /// TCP connect and CONNACK together took longer than
    /// [`ConnectOptions::connect_timeout`](crate::ConnectOptions::connect_timeout).
    #[error("timed out waiting for the broker")]
    Timeout,
    /// The broker stopped answering PINGREQ.
    #[error("the broker stopped answering (keep alive timeout)")]
    KeepAliveTimeout,
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    ConnectionLost,
    /// The client is disconnected: [`Client::disconnect`](crate::Client::disconnect)
    /// was called, or every handle was dropped.
    #[error("the client is disconnected")]
    Disconnected,
    /// The call was refused by the MQTT session (bad topic, full queue, not
    /// connected for QoS 0, …); nothing was sent.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The broker broke the protocol.
    #[error("protocol violation by the broker: {0}")]
    Protocol(#[from] ProtocolError),
    /// The broker refused a subscription (SUBACK return code 0x80).
    #[error("the broker refused the subscription to `{filter}`")]
    SubscriptionRefused {
        /// The filter refused.
        filter: String,
    },
    /// The publish will not be completed: a QoS 0 message not yet written
    /// when the connection ended, or a QoS 1/2 message of a clean session
    /// that ended before the broker acknowledged it.
    #[error("the message was dropped when the connection ended")]
    Dropped,
}

/// The meaning of a CONNACK return code, in words.
const fn refusal_text(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Accepted => "accepted",
        ConnectReturnCode::UnacceptableProtocolVersion => "unacceptable protocol version",
        ConnectReturnCode::IdentifierRejected => "client identifier rejected",
        ConnectReturnCode::ServerUnavailable => "server unavailable",
        ConnectReturnCode::BadUsernameOrPassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorised",
    }
}

impl ClientError {
    /// Whether a refusal with this code is worth retrying: only "server
    /// unavailable" (0x03) may change by itself; a wrong protocol level,
    /// identifier, password or authorisation will not.
    #[must_use]
    pub const fn is_retryable_refusal(code: ConnectReturnCode) -> bool {
        matches!(code, ConnectReturnCode::ServerUnavailable)
    }
}

/// Turns an I/O error into [`ClientError::Io`].
pub(crate) fn io_error(e: &std::io::Error) -> ClientError {
    ClientError::Io(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_code() {
        let e = ClientError::Refused(ConnectReturnCode::BadUsernameOrPassword);
        assert_eq!(
            e.to_string(),
            "connection refused: bad user name or password (0x04)"
        );
        let e = ClientError::Refused(ConnectReturnCode::ServerUnavailable);
        assert_eq!(
            e.to_string(),
            "connection refused: server unavailable (0x03)"
        );
    }

    #[test]
    fn only_server_unavailable_is_retried() {
        for code in [
            ConnectReturnCode::UnacceptableProtocolVersion,
            ConnectReturnCode::IdentifierRejected,
            ConnectReturnCode::BadUsernameOrPassword,
            ConnectReturnCode::NotAuthorized,
        ] {
            assert!(!ClientError::is_retryable_refusal(code), "{code:?}");
        }
        assert!(ClientError::is_retryable_refusal(
            ConnectReturnCode::ServerUnavailable
        ));
    }
}
