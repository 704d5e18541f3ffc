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
    let mut filter_levels = filter.split('/');
    let mut name_levels = name.split('/');
    loop {
        match (filter_levels.next(), name_levels.next()) {
            // `#` covers the parent level (name exhausted) and every level below.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(n)) => {
                if f != n {
                    return false;
                }
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}
