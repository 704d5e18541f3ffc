//! Shared-subscription filters, `$share/{group}/{filter}`.
//!
//! MQTT 3.1.1 has no shared subscriptions: the syntax comes from MQTT 5 (section
//! 4.8.2) and many 3.1.1 brokers accept it. To a 3.1.1 peer such a string is just a
//! valid filter whose first level is `$share`, so parsing is a broker decision; this
//! module only splits the string, the broker decides what to do with it.

use alloc::string::String;
use core::fmt;

use crate::{validate_topic_filter, SharedFilterProblem, TopicError, TopicFilter};

/// The first level that marks a shared subscription.
pub const SHARE_PREFIX: &str = "$share";

/// A parsed `$share/{group}/{filter}` subscription.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedFilter {
    group: String,
    filter: TopicFilter,
}

impl SharedFilter {
    /// Parses `s` as a shared subscription.
    ///
    /// Returns `Ok(None)` when the first level of `s` is not `$share` (a plain filter,
    /// to be validated with [`TopicFilter::new`]), `Ok(Some(..))` for a well-formed
    /// shared subscription, and an error when `s` starts with `$share/` but the group
    /// is empty or holds a wildcard, no filter follows, or the filter is invalid.
    ///
    /// # Errors
    /// [`TopicError::InvalidSharedSubscription`] for a malformed group or missing
    /// filter; the filter's own [`TopicError`] when the part after the group is not a
    /// valid filter.
    ///
    /// ```
    /// use midge_topic::SharedFilter;
    /// let shared = SharedFilter::parse("$share/workers/jobs/+").unwrap().unwrap();
    /// assert_eq!(shared.group(), "workers");
    /// assert_eq!(shared.filter().as_str(), "jobs/+");
    /// assert_eq!(SharedFilter::parse("jobs/+"), Ok(None));
    /// ```
    pub fn parse(s: &str) -> Result<Option<Self>, TopicError> {
        let Some((first, rest)) = s.split_once('/') else {
            return Ok(None);
        };
        if first != SHARE_PREFIX {
            return Ok(None);
        }
        let Some((group, filter)) = rest.split_once('/') else {
            return Err(TopicError::InvalidSharedSubscription(
                SharedFilterProblem::MissingFilter,
            ));
        };
        if group.is_empty() {
            return Err(TopicError::InvalidSharedSubscription(
                SharedFilterProblem::EmptyGroup,
            ));
        }
        if group.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(TopicError::InvalidSharedSubscription(
                SharedFilterProblem::WildcardInGroup,
            ));
        }
        if group.contains('\0') {
            return Err(TopicError::NullCharacter);
        }
        if filter.is_empty() {
            return Err(TopicError::InvalidSharedSubscription(
                SharedFilterProblem::MissingFilter,
            ));
        }
        // The whole string must itself fit the length limit [MQTT-4.7.3-3].
        validate_topic_filter(s)?;
        Ok(Some(Self {
            group: String::from(group),
            filter: TopicFilter::new(filter)?,
        }))
    }

    /// The share group name (non-empty, no `/`, `+` or `#`).
    #[must_use]
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The filter that the group shares.
    #[must_use]
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }

    /// Splits into group name and filter.
    #[must_use]
    pub fn into_parts(self) -> (String, TopicFilter) {
        (self.group, self.filter)
    }
}

impl fmt::Display for SharedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHARE_PREFIX}/{}/{}", self.group, self.filter)
    }
}

/// A subscription filter as a broker sees it: plain or shared.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubscriptionFilter {
    /// An ordinary filter; every matching subscriber receives the message.
    Plain(TopicFilter),
    /// A shared subscription; one member of the group receives each message.
    Shared(SharedFilter),
}

impl SubscriptionFilter {
    /// Parses a filter from SUBSCRIBE, recognising `$share/{group}/{filter}`.
    ///
    /// # Errors
    /// As [`SharedFilter::parse`] for shared filters and [`TopicFilter::new`] for
    /// plain ones.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        match SharedFilter::parse(s)? {
            Some(shared) => Ok(Self::Shared(shared)),
            None => Ok(Self::Plain(TopicFilter::new(s)?)),
        }
    }

    /// The filter that topics are matched against (for a shared subscription, the
    /// part after the group).
    #[must_use]
    pub fn topic_filter(&self) -> &TopicFilter {
        match self {
            Self::Plain(f) => f,
            Self::Shared(s) => &s.filter,
        }
    }
}
