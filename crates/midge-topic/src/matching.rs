//! Matching one topic filter against one topic name (section 4.7).

use crate::{TopicFilter, TopicName};

/// Returns true when `filter` matches `name` under the rules of section 4.7.
///
/// See [`matches_str`] for the rules.
#[inline]
#[must_use]
pub fn matches(filter: &TopicFilter, name: &TopicName) -> bool {
    matches_str(filter.as_str(), name.as_str())
}

/// Returns true when the filter string matches the name string, both assumed valid.
///
/// The rules:
/// - levels are compared byte for byte; nothing is normalised, case folded or
///   substituted [MQTT-4.7.3-4];
/// - `+` matches exactly one level, which may be empty (`sport/+` matches `sport/`
///   but not `sport`) [MQTT-4.7.1-3];
/// - `#` matches its parent level and any number of levels below it (`sport/#`
///   matches `sport`, `sport/` and `sport/tennis/player1`) [MQTT-4.7.1-2];
/// - a filter whose first character is a wildcard never matches a name whose first
///   character is `$`; `$SYS/#` does match `$SYS/x` [MQTT-4.7.2-1].
///
/// Inputs that fail [`validate_topic_filter`](crate::validate_topic_filter) or
/// [`validate_topic_name`](crate::validate_topic_name) give an unspecified but
/// deterministic answer, never a panic. No allocation.
///
/// ```
/// use midge_topic::matches_str;
/// assert!(matches_str("sport/#", "sport"));
/// assert!(matches_str("+/+", "/finance"));
/// assert!(!matches_str("+", "/finance"));
/// assert!(!matches_str("#", "$SYS/uptime"));
/// assert!(matches_str("$SYS/#", "$SYS/uptime"));
/// ```
#[must_use]
pub fn matches_str(filter: &str, name: &str) -> bool {
    // [MQTT-4.7.2-1]: wildcard-first filters do not see `$` topics.
    if name.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    // Walk both byte strings a level at a time. `/`, `+` and `#` are ASCII and never
    // occur inside a multi-byte UTF-8 sequence, so byte positions are exact.
    let (f, n) = (filter.as_bytes(), name.as_bytes());
    let (mut fi, mut ni) = (0usize, 0usize);
    loop {
        // Here `fi` and `ni` are at the start of a level.
        let next = f.get(fi + 1);
        match f.get(fi) {
            // `#` covers this level, any below, and none at all [MQTT-4.7.1-2].
            Some(b'#') if matches!(next, None | Some(b'/')) => return true,
            // `+` takes exactly one name level, possibly empty [MQTT-4.7.1-3].
            Some(b'+') if matches!(next, None | Some(b'/')) => {
                fi += 1;
                ni = n
                    .get(ni..)
                    .and_then(|rest| rest.iter().position(|&b| b == b'/'))
                    .map_or(n.len(), |p| ni + p);
            }
            // A literal level must equal the name level byte for byte [MQTT-4.7.3-4].
            _ => loop {
                match (f.get(fi), n.get(ni)) {
                    (None | Some(b'/'), None | Some(b'/')) => break,
                    (Some(a), Some(b)) if a == b => {
                        fi += 1;
                        ni += 1;
                    }
                    _ => return false,
                }
            },
        }
        // Both at the end of a level.
        match (f.get(fi), n.get(ni)) {
            (None, None) => return true,
            (Some(_), Some(_)) => {
                // Both are `/`: step into the next level.
                fi += 1;
                ni += 1;
            }
            // The name ended: only a final `/#` still matches (the parent level).
            (Some(_), None) => return f.get(fi + 1..) == Some(b"#".as_slice()),
            (None, Some(_)) => return false,
        }
    }
}
