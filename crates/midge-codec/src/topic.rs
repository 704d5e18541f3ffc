//! Topic rules, delegated to `midge-topic` so that client, broker and codec
//! agree on one definition.

use crate::error::{DecodeError, Field};

/// A PUBLISH or will topic: non-empty, no wildcards [MQTT-3.3.2-2] [MQTT-4.7.3-1].
#[inline]
pub(crate) fn check_topic_name(s: &str, field: Field) -> Result<(), DecodeError> {
    midge_topic::validate_topic_name(s)
        .map_err(|source| DecodeError::InvalidTopicName { field, source })
}

/// A SUBSCRIBE or UNSUBSCRIBE filter: non-empty, wildcards alone in their
/// level, `#` last [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1].
#[inline]
pub(crate) fn check_topic_filter(s: &str) -> Result<(), DecodeError> {
    midge_topic::validate_topic_filter(s).map_err(DecodeError::InvalidTopicFilter)
}
