//! Exit codes scripts can rely on, and the failure type that carries one.

use std::fmt;
use std::process::ExitCode;

use midge_client::ClientError;

/// The process exit codes (listed in `--help` and docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Everything went as asked.
    Ok = 0,
    /// Anything else: an unreadable file, a closed stdout, an internal
    /// error.
    Other = 1,
    /// A bad command line (clap uses the same code).
    Usage = 2,
    /// The broker could not be reached, or the connection was lost.
    Unreachable = 3,
    /// The broker refused the connection (or a subscription).
    Refused = 4,
    /// The broker broke the protocol.
    Protocol = 5,
    /// `-W` expired, as mosquitto_sub's timeout code.
    Timeout = 27,
}

impl From<Exit> for ExitCode {
    fn from(value: Exit) -> Self {
        Self::from(value as u8)
    }
}

/// Why a command failed: the exit code and what to print on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The exit code.
    pub(crate) exit: Exit,
    /// One line for stderr.
    pub(crate) message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        let exit = match &err {
            ClientError::Refused(_) | ClientError::SubscriptionRefused { .. } => Exit::Refused,
            ClientError::Unreachable { .. }
            | ClientError::Io(_)
            | ClientError::Timeout
            | ClientError::KeepAliveTimeout
            | ClientError::ConnectionLost
            | ClientError::Disconnected
            | ClientError::Dropped
            | ClientError::Tls(_)
            | ClientError::WebSocket(_) => Exit::Unreachable,
            ClientError::Protocol(_) => Exit::Protocol,
            ClientError::Url(_) | ClientError::UnsupportedScheme(_) | ClientError::Usage(_) => {
                Exit::Usage
            }
            _ => Exit::Other,
        };
        Self::new(exit, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_codec::ConnectReturnCode;

    #[test]
    fn codes_are_distinct_and_stable() {
        let codes = [
            Exit::Ok,
            Exit::Other,
            Exit::Usage,
            Exit::Unreachable,
            Exit::Refused,
            Exit::Protocol,
            Exit::Timeout,
        ]
        .map(|e| e as u8);
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 27]);
    }

    #[test]
    fn refusal_keeps_the_connack_code_by_name() {
        let f = Failure::from(ClientError::Refused(ConnectReturnCode::NotAuthorized));
        assert_eq!(f.exit, Exit::Refused);
        assert_eq!(f.message, "connection refused: not authorised (0x05)");
    }

    #[test]
    fn transport_failures_are_unreachable() {
        let f = Failure::from(ClientError::Unreachable {
            host: "h".into(),
            port: 1,
            reason: "refused".into(),
        });
        assert_eq!(f.exit, Exit::Unreachable);
        assert_eq!(
            Failure::from(ClientError::ConnectionLost).exit,
            Exit::Unreachable
        );
        assert_eq!(Failure::from(ClientError::Timeout).exit, Exit::Unreachable);
    }
}
