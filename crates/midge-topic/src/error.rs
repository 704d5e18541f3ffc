//! The one error type of this crate.

use thiserror::Error;

/// Why a string is not a valid topic name, topic filter or shared-subscription filter.
///
/// Each variant names the rule that was broken; the `Display` text cites the
/// MQTT 3.1.1 normative statement behind it where there is one.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The string has no characters at all [MQTT-4.7.3-1].
    #[error("topic is empty; names and filters need at least one character [MQTT-4.7.3-1]")]
    Empty,
    /// The UTF-8 encoding is longer than 65535 bytes [MQTT-4.7.3-3].
    #[error("topic is {len} bytes long; the limit is 65535 [MQTT-4.7.3-3]")]
    TooLong {
        /// Length of the rejected string, in bytes.
        len: usize,
    },
    /// The string contains U+0000 [MQTT-4.7.3-2].
    #[error("topic contains the null character U+0000 [MQTT-4.7.3-2]")]
    NullCharacter,
    /// A topic name contains `+` or `#`, which only filters may use [MQTT-4.7.1-1].
    #[error("topic name contains a wildcard ('+' or '#'), only filters may [MQTT-4.7.1-1]")]
    WildcardInName,
    /// A `#` is followed by more levels [MQTT-4.7.1-2].
    #[error("'#' must be the last level of a filter [MQTT-4.7.1-2]")]
    MultiLevelWildcardNotLast,
    /// A `#` shares its level with other characters [MQTT-4.7.1-2].
    #[error("'#' must be alone in its level [MQTT-4.7.1-2]")]
    MultiLevelWildcardNotAlone,
    /// A `+` shares its level with other characters [MQTT-4.7.1-3].
    #[error("'+' must be alone in its level [MQTT-4.7.1-3]")]
    SingleLevelWildcardNotAlone,
    /// A `$share/{group}/{filter}` string is malformed (see [`SharedFilterProblem`]).
    #[error("invalid shared subscription: {0}")]
    InvalidSharedSubscription(SharedFilterProblem),
}

/// What is wrong with a `$share/{group}/{filter}` string.
///
/// Shared subscriptions are not part of MQTT 3.1.1 (they come from MQTT 5, section
/// 4.8.2, and are widely offered by 3.1.1 brokers), so no 3.1.1 statement id applies.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SharedFilterProblem {
    /// The group name between `$share/` and the next `/` is empty.
    #[error("the share group name is empty")]
    EmptyGroup,
    /// The group name contains `+` or `#`.
    #[error("the share group name contains a wildcard")]
    WildcardInGroup,
    /// There is no `/` and filter after the group name.
    #[error("no topic filter follows the share group name")]
    MissingFilter,
}
