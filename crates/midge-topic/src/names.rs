//! The validated newtypes [`TopicName`] and [`TopicFilter`].

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use crate::{validate_topic_filter, validate_topic_name, TopicError};

/// Iterator over the `/`-separated levels of a topic name or filter.
///
/// A string of `n` separators has `n + 1` levels, some possibly empty: `/a` has the
/// levels `""` and `"a"`.
pub type Levels<'a> = core::str::Split<'a, char>;

macro_rules! topic_newtype_common {
    ($ty:ident, $validate:ident) => {
        impl $ty {
            /// Validates `s` and wraps it.
            ///
            /// # Errors
            /// The [`TopicError`] naming the first rule `s` breaks.
            pub fn new(s: impl Into<String>) -> Result<Self, TopicError> {
                let s = s.into();
                $validate(&s)?;
                Ok(Self(s))
            }

            /// The topic as a string slice.
            #[inline]
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the string.
            #[must_use]
            pub fn into_string(self) -> String {
                self.0
            }

            /// The `/`-separated levels, empty levels included.
            #[inline]
            pub fn levels(&self) -> Levels<'_> {
                self.0.split('/')
            }

            /// Length in bytes (1..=65535).
            #[inline]
            #[must_use]
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Always false: an empty topic cannot be constructed [MQTT-4.7.3-1].
            #[inline]
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            /// True when the first character is `$` (for example `$SYS/...`); see
            /// [MQTT-4.7.2-1].
            #[inline]
            #[must_use]
            pub fn is_dollar(&self) -> bool {
                self.0.starts_with('$')
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl core::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = TopicError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = TopicError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$ty> for String {
            fn from(t: $ty) -> Self {
                t.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// A topic name, as carried by PUBLISH: valid per [`validate_topic_name`].
///
/// Holds no wildcards [MQTT-4.7.1-1]; may start with `$` and may have empty levels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(String);

topic_newtype_common!(TopicName, validate_topic_name);

/// A topic filter, as carried by SUBSCRIBE and UNSUBSCRIBE: valid per
/// [`validate_topic_filter`].
///
/// May contain `+` levels anywhere and one `#` level at the end.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicFilter(String);

topic_newtype_common!(TopicFilter, validate_topic_filter);

impl TopicFilter {
    /// True when the filter has a `+` or `#` level.
    #[must_use]
    pub fn has_wildcards(&self) -> bool {
        self.0.bytes().any(|b| b == b'+' || b == b'#')
    }

    /// True when this filter matches `name`; see [`matches_str`](crate::matches_str).
    #[inline]
    #[must_use]
    pub fn matches(&self, name: &TopicName) -> bool {
        crate::matches_str(&self.0, &name.0)
    }
}

impl From<TopicName> for TopicFilter {
    /// Every topic name is also a filter that matches exactly that name.
    fn from(name: TopicName) -> Self {
        Self(name.0)
    }
}
