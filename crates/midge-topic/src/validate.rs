//! Allocation-free, single-pass checks for topic names and topic filters.
//!
//! The caller hands in a `&str`, so UTF-8 well-formedness is already settled. Every
//! byte this module looks for (`/`, `+`, `#`, NUL) is ASCII, and ASCII bytes never
//! occur inside a multi-byte UTF-8 sequence, so scanning bytes is exact.

use crate::TopicError;

/// Longest topic name or filter, in bytes: the length prefix of an MQTT string is
/// 16 bits [MQTT-4.7.3-3].
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Length rules shared by names and filters: at least one character
/// [MQTT-4.7.3-1] and at most 65535 bytes [MQTT-4.7.3-3].
#[inline]
fn check_len(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        Err(TopicError::Empty)
    } else if s.len() > MAX_TOPIC_LEN {
        Err(TopicError::TooLong { len: s.len() })
    } else {
        Ok(())
    }
}

/// Checks that `s` may be used as the topic name of a PUBLISH.
///
/// A name is non-empty [MQTT-4.7.3-1], at most 65535 bytes [MQTT-4.7.3-3], free of
/// U+0000 [MQTT-4.7.3-2] and free of the wildcards `+` and `#` [MQTT-4.7.1-1].
/// Empty levels (`a//b`, `/a`, `a/`) and a leading `$` are allowed.
///
/// One pass over the bytes, no allocation.
///
/// ```
/// use midge_topic::{validate_topic_name, TopicError};
/// assert_eq!(validate_topic_name("sport/tennis/player1"), Ok(()));
/// assert_eq!(validate_topic_name("sport/+"), Err(TopicError::WildcardInName));
/// ```
#[inline]
pub fn validate_topic_name(s: &str) -> Result<(), TopicError> {
    check_len(s)?;
    for &b in s.as_bytes() {
        match b {
            0x00 => return Err(TopicError::NullCharacter),
            b'+' | b'#' => return Err(TopicError::WildcardInName),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that `s` may be used as a topic filter in SUBSCRIBE or UNSUBSCRIBE.
///
/// A filter obeys the same length and U+0000 rules as a name
/// ([MQTT-4.7.3-1], [MQTT-4.7.3-2], [MQTT-4.7.3-3]); in addition `#` must fill its
/// whole level and be the final level [MQTT-4.7.1-2], and `+` must fill its whole
/// level [MQTT-4.7.1-3]. Empty levels are allowed.
///
/// One pass over the bytes, no allocation.
///
/// ```
/// use midge_topic::{validate_topic_filter, TopicError};
/// assert_eq!(validate_topic_filter("sport/+/player1/#"), Ok(()));
/// assert_eq!(validate_topic_filter("sport/tennis#"), Err(TopicError::MultiLevelWildcardNotAlone));
/// assert_eq!(validate_topic_filter("sport/#/ranking"), Err(TopicError::MultiLevelWildcardNotLast));
/// ```
#[inline]
pub fn validate_topic_filter(s: &str) -> Result<(), TopicError> {
    check_len(s)?;
    let mut bytes = s.as_bytes().iter().copied().peekable();
    // True when the byte being looked at is the first of its level.
    let mut level_start = true;
    while let Some(b) = bytes.next() {
        match b {
            0x00 => return Err(TopicError::NullCharacter),
            b'#' => {
                if !level_start {
                    return Err(TopicError::MultiLevelWildcardNotAlone);
                }
                match bytes.peek() {
                    None => {}
                    Some(b'/') => return Err(TopicError::MultiLevelWildcardNotLast),
                    Some(_) => return Err(TopicError::MultiLevelWildcardNotAlone),
                }
            }
            b'+' if !level_start || !matches!(bytes.peek(), None | Some(b'/')) => {
                return Err(TopicError::SingleLevelWildcardNotAlone);
            }
            _ => {}
        }
        level_start = b == b'/';
    }
    Ok(())
}
