//! MQTT topic names, topic filters, matching and the subscription index: the one
//! topic implementation that Midge's client, broker and gateway share.
//!
//! What it does (MQTT 3.1.1 section 4.7):
//! - validates names and filters in one allocation-free pass
//!   ([`validate_topic_name`], [`validate_topic_filter`]) and wraps them in the
//!   newtypes [`TopicName`] and [`TopicFilter`];
//! - matches one filter against one name ([`matches()`], [`matches_str`]), including
//!   the `$` rule [MQTT-4.7.2-1];
//! - keeps the broker's subscriptions in a [`SubscriptionIndex`], a trie that
//!   reports every matching (subscriber, value, filter) for a topic without
//!   allocating per level, and frees branches when their last subscriber leaves;
//! - parses shared-subscription filters `$share/{group}/{filter}` ([`SharedFilter`],
//!   [`SubscriptionFilter`]).
//!
//! What it deliberately does not do:
//! - check UTF-8 well-formedness: inputs are `&str`, so the codec has already
//!   rejected ill-formed strings;
//! - decide who receives a message: overlapping subscriptions (one delivery at the
//!   highest QoS), share-group member choice, authorisation and retained messages are
//!   the broker's rules; the index only reports every match;
//! - normalise or case-fold anything [MQTT-4.7.3-4];
//! - allocate on the matching path, recurse on input-controlled depth, or panic on
//!   any input.
//!
//! Key types: [`TopicName`], [`TopicFilter`], [`TopicError`], [`SubscriptionIndex`],
//! [`SharedFilter`] / [`SubscriptionFilter`].
//!
//! ```
//! use midge_topic::{matches_str, SubscriptionIndex, TopicFilter};
//!
//! assert!(matches_str("sport/+/player1", "sport/tennis/player1"));
//!
//! let mut index = SubscriptionIndex::new();
//! index.insert(&TopicFilter::new("sport/#")?, "client-a", 1u8);
//! index.insert(&TopicFilter::new("$SYS/#")?, "monitor", 0u8);
//! let hits = index.matches("sport/tennis");
//! assert_eq!(hits.len(), 1);
//! assert_eq!(*hits[0].0, "client-a");
//! # Ok::<(), midge_topic::TopicError>(())
//! ```
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
mod small_map;
mod validate;

#[doc(hidden)]
pub mod naive;

pub use error::{SharedFilterProblem, TopicError};
pub use index::{SubscriptionIndex, INLINE_BRANCHES};
pub use matching::{matches, matches_str};
pub use names::{Levels, TopicFilter, TopicName};
pub use shared::{SharedFilter, SubscriptionFilter, SHARE_PREFIX};
pub use validate::{validate_topic_filter, validate_topic_name, MAX_TOPIC_LEN};
