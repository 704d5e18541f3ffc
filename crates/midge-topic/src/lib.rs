//! MQTT topic names, topic filters, matching and the subscription index: the one
//! topic implementation that Midge's client, broker and gateway share.
//!
//! What it does (MQTT 3.1.1 section 4.7):
//! - validates names and filters in one allocation-free pass
//!   ([`validate_topic_name`], [`validate_topic_filter`]) and wraps them in the
//!   newtypes [`TopicName`] and [`TopicFilter`];
//! - matches one filter against one name ([`matches`], [`matches_str`]), including
//!   the `$` rule [MQTT-4.7.2-1];
//! - keeps the broker's subscriptions in a [`SubscriptionIndex`], a trie that
//!   reports every matching (subscriber, value, filter) for a topic without
//!   allocating per level, and frees branches when their last subscriber leaves;
//! - parses shared-subscription filters `$share/{group}/{filter}` ([`SharedFilter`],
//!   [`SubscriptionFilter`]).
//!
//! What it deliberately does not do: check UTF-8 (inputs are `&str` already; the
//! codec rejects ill-formed strings), decide who receives a message (overlapping
//! subscriptions, QoS, share-group choice are the broker's rules), read
//! `/work`-style files, allocate on the matching path, or panic on any input.
//!
//! Builds without `std` (disable the default `std` feature); needs `alloc`.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod error;
mod index;
mod matching;
mod names;
mod shared;
mod validate;

#[doc(hidden)]
pub mod naive;

pub use error::{SharedFilterProblem, TopicError};
pub use index::{SubscriptionIndex, INLINE_BRANCHES};
pub use matching::{matches, matches_str};
pub use names::{Levels, TopicFilter, TopicName};
pub use shared::{SharedFilter, SubscriptionFilter, SHARE_PREFIX};
pub use validate::{validate_topic_filter, validate_topic_name, MAX_TOPIC_LEN};
