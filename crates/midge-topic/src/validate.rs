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

/// Eight copies of one byte value in a `u64`.
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// Non-zero exactly when some byte of `x` is zero (the classic carry trick: a byte
/// can only borrow from its high bit if it was zero or the byte below it borrowed,
/// and the lowest such byte is always a true zero).
#[inline]
const fn has_zero_byte(x: u64) -> u64 {
    x.wrapping_sub(splat(0x01)) & !x & splat(0x80)
}

/// Index of the first byte at or after `from` that is NUL, `+` or `#`: the only
/// bytes the validators care about. Skips eight bytes at a time while none of the
/// three is present.
#[inline]
fn find_special(bytes: &[u8], from: usize) -> Option<usize> {
    let tail = bytes.get(from..)?;
    let mut words = tail.chunks_exact(8);
    let mut at = from;
    for chunk in words.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let special = has_zero_byte(word)
            | has_zero_byte(word ^ splat(b'+'))
            | has_zero_byte(word ^ splat(b'#'));
        if special != 0 {
            break;
        }
        at += 8;
    }
    let offset = bytes
        .get(at..)?
        .iter()
        .position(|&b| matches!(b, 0x00 | b'+' | b'#'))?;
    Some(at + offset)
}

/// Checks that `s` may be used as the topic name of a PUBLISH.
///
/// A name is non-empty [MQTT-4.7.3-1], at most 65535 bytes [MQTT-4.7.3-3], free of
/// U+0000 [MQTT-4.7.3-2] and free of the wildcards `+` and `#` [MQTT-4.7.1-1].
/// Empty levels (`a//b`, `/a`, `a/`) and a leading `$` are allowed.
///
/// One pass over the bytes, eight at a time; no allocation.
///
/// ```
/// use midge_topic::{validate_topic_name, TopicError};
/// assert_eq!(validate_topic_name("sport/tennis/player1"), Ok(()));
/// assert_eq!(validate_topic_name("sport/+"), Err(TopicError::WildcardInName));
/// ```
#[inline]
pub fn validate_topic_name(s: &str) -> Result<(), TopicError> {
    check_len(s)?;
    let bytes = s.as_bytes();
    match find_special(bytes, 0).and_then(|at| bytes.get(at)) {
        None => Ok(()),
        Some(0x00) => Err(TopicError::NullCharacter),
        Some(_) => Err(TopicError::WildcardInName),
    }
}

/// Checks that `s` may be used as a topic filter in SUBSCRIBE or UNSUBSCRIBE.
///
/// A filter obeys the same length and U+0000 rules as a name
/// ([MQTT-4.7.3-1], [MQTT-4.7.3-2], [MQTT-4.7.3-3]); in addition `#` must fill its
/// whole level and be the final level [MQTT-4.7.1-2], and `+` must fill its whole
/// level [MQTT-4.7.1-3]. Empty levels are allowed. When several rules are broken,
/// the error is about the first offending byte.
///
/// One pass over the bytes, eight at a time; no allocation.
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
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(at) = find_special(bytes, from) {
        // A wildcard must start its level: first byte, or right after a `/`.
        let starts_level = match at.checked_sub(1) {
            None => true,
            Some(before) => bytes.get(before) == Some(&b'/'),
        };
        let next = bytes.get(at + 1);
        match bytes.get(at) {
            Some(0x00) => return Err(TopicError::NullCharacter),
            Some(b'#') => {
                if !starts_level {
                    return Err(TopicError::MultiLevelWildcardNotAlone);
                }
                match next {
                    None => {}
                    Some(b'/') => return Err(TopicError::MultiLevelWildcardNotLast),
                    Some(_) => return Err(TopicError::MultiLevelWildcardNotAlone),
                }
            }
            Some(b'+') if !starts_level || !matches!(next, None | Some(b'/')) => {
                return Err(TopicError::SingleLevelWildcardNotAlone);
            }
            _ => {}
        }
        from = at + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time scan finds the same first special byte as a plain scan,
    /// wherever it sits relative to the 8-byte chunks.
    #[test]
    fn find_special_agrees_with_a_byte_scan() {
        for len in 0..40 {
            for at in 0..len {
                for special in [0x00, b'+', b'#'] {
                    let mut bytes = alloc::vec![b'a'; len];
                    // Bytes that differ from the specials by one bit must not trigger.
                    if let Some(b) = bytes.get_mut(at / 2) {
                        *b = special ^ 0x01;
                    }
                    bytes[at] = special;
                    let plain = bytes.iter().position(|&b| matches!(b, 0x00 | b'+' | b'#'));
                    assert_eq!(find_special(&bytes, 0), plain, "len {len} at {at}");
                    assert_eq!(find_special(&bytes, at + 1), None);
                }
            }
            assert_eq!(find_special(&alloc::vec![0x80; len], 0), None);
        }
    }
}
