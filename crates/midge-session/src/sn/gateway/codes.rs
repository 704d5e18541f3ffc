//! MQTT answers and errors mapped to MQTT-SN return codes (spec 5.3.10).

use midge_codec::ConnectReturnCode;
use midge_sn_codec::ReturnCode;

use crate::UsageError;

/// A refusing CONNACK from the broker. An unavailable server is a passing
/// condition (congestion); every other refusal is about this client's
/// request, which the gateway cannot serve (not supported).
pub(crate) const fn connack(code: ConnectReturnCode) -> ReturnCode {
    match code {
        ConnectReturnCode::Accepted => ReturnCode::Accepted,
        ConnectReturnCode::ServerUnavailable => ReturnCode::Congestion,
        _ => ReturnCode::NotSupported,
    }
}

/// The MQTT machine refused a command: full queues and exhausted ids are
/// congestion; a topic or size MQTT cannot carry is not supported.
pub(crate) const fn usage_error(e: &UsageError) -> ReturnCode {
    match e {
        UsageError::QueueFull { .. }
        | UsageError::TooManyRequests { .. }
        | UsageError::NoPacketId
        | UsageError::NotConnected => ReturnCode::Congestion,
        _ => ReturnCode::NotSupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sn_5_3_10_connack_codes_map_to_sn_codes() {
        assert_eq!(connack(ConnectReturnCode::Accepted), ReturnCode::Accepted);
        assert_eq!(
            connack(ConnectReturnCode::ServerUnavailable),
            ReturnCode::Congestion
        );
        assert_eq!(
            connack(ConnectReturnCode::NotAuthorized),
            ReturnCode::NotSupported
        );
        assert_eq!(
            connack(ConnectReturnCode::IdentifierRejected),
            ReturnCode::NotSupported
        );
    }

    #[test]
    fn sn_5_3_10_usage_errors_map_to_congestion_or_not_supported() {
        assert_eq!(
            usage_error(&UsageError::QueueFull { max: 1 }),
            ReturnCode::Congestion
        );
        assert_eq!(
            usage_error(&UsageError::NotConnected),
            ReturnCode::Congestion
        );
        assert_eq!(
            usage_error(&UsageError::PacketTooLarge { size: 9 }),
            ReturnCode::NotSupported
        );
    }
}
