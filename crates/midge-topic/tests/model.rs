//! Property tests: the fast code against the naive reference in `midge_topic::naive`.
//!
//! Topics are drawn from a small alphabet of levels so that random filters and names
//! collide often: empty levels, `$`-prefixed levels, multi-byte characters, spaces
//! and case variants are all in it.
// Tests may unwrap and panic: a panic is how they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use midge_topic::naive::{self, NaiveIndex};
use midge_topic::{
    matches_str, validate_topic_filter, validate_topic_name, SharedFilter, SubscriptionIndex,
    TopicError, TopicFilter, TopicName,
};
use proptest::prelude::*;

const NAME_LEVELS: &[&str] = &["a", "A", "b", "", "é", "日本", "$SYS", "$", "a b", "x$"];

fn name_level() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(NAME_LEVELS)
}

fn filter_level() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => name_level(), 1 => Just("+")]
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(name_level(), 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("names are not empty", |s| !s.is_empty())
}

fn filter() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(filter_level(), 0..5),
        any::<bool>(),
    )
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("filters are not empty", |s| !s.is_empty())
}

/// Sorted (filter, key, value) triples reported by the index.
fn index_answer(index: &SubscriptionIndex<u8, u16>, topic: &str) -> Vec<(String, u8, u16)> {
    let mut got: Vec<_> = index
        .matches(topic)
        .into_iter()
        .map(|(k, v, f)| (f.as_str().to_owned(), *k, *v))
        .collect();
    got.sort();
    got
}

fn naive_answer(reference: &NaiveIndex<u8, u16>, topic: &str) -> Vec<(String, u8, u16)> {
    let mut want: Vec<_> = reference.matching(topic).cloned().collect();
    want.sort();
    want
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_topics_are_valid(n in name(), f in filter()) {
        prop_assert_eq!(validate_topic_name(&n), Ok(()));
        prop_assert_eq!(validate_topic_filter(&f), Ok(()));
    }

    #[test]
    fn mqtt_4_7_2_1_single_match_agrees_with_naive(f in filter(), n in name()) {
        prop_assert_eq!(matches_str(&f, &n), naive::matches(&f, &n));
        let expected = naive::matches(&f, &n);
        let (tf, tn) = (TopicFilter::new(f).unwrap(), TopicName::new(n).unwrap());
        prop_assert_eq!(tf.matches(&tn), expected);
    }

    #[test]
    fn every_name_matches_itself_as_a_filter(n in name()) {
        prop_assert!(matches_str(&n, &n));
        let as_filter = TopicFilter::from(TopicName::new(n.clone()).unwrap());
        let mut index = SubscriptionIndex::new();
        index.insert(&as_filter, 0u8, 0u16);
        prop_assert_eq!(index.matches(&n).len(), 1);
    }

    #[test]
    fn index_agrees_with_linear_scan(
        subs in proptest::collection::vec((filter(), 0u8..4, any::<u16>()), 0..40),
        topics in proptest::collection::vec(name(), 1..20),
    ) {
        let mut index = SubscriptionIndex::new();
        let mut reference = NaiveIndex::new();
        for (f, k, v) in &subs {
            let old = index.insert(&TopicFilter::new(f.as_str()).unwrap(), *k, *v);
            prop_assert_eq!(old, reference.insert(f, *k, *v));
        }
        prop_assert_eq!(index.len(), reference.entries.len());
        for topic in &topics {
            prop_assert_eq!(index_answer(&index, topic), naive_answer(&reference, topic), "topic {:?}", topic);
        }
    }

    #[test]
    fn insert_remove_sequences_equal_a_fresh_index_of_the_survivors(
        pool in proptest::collection::vec(filter(), 1..12),
        ops in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>(), 0u8..3, any::<u16>()), 0..80),
        topics in proptest::collection::vec(name(), 1..12),
    ) {
        let pool: Vec<TopicFilter> = pool.into_iter().map(|f| TopicFilter::new(f).unwrap()).collect();
        let mut index = SubscriptionIndex::new();
        let mut model: BTreeMap<(TopicFilter, u8), u16> = BTreeMap::new();
        for (insert, which, key, value) in ops {
            let filter = which.get(&pool);
            if insert {
                prop_assert_eq!(index.insert(filter, key, value), model.insert((filter.clone(), key), value));
            } else {
                prop_assert_eq!(index.remove(filter, &key), model.remove(&(filter.clone(), key)));
            }
        }
        let mut fresh = SubscriptionIndex::new();
        for ((filter, key), value) in &model {
            fresh.insert(filter, *key, *value);
        }
        prop_assert_eq!(index.len(), model.len());
        prop_assert_eq!(index.node_count(), fresh.node_count());
        for topic in &topics {
            prop_assert_eq!(index_answer(&index, topic), index_answer(&fresh, topic));
        }
        for ((filter, key), value) in &model {
            prop_assert_eq!(index.get(filter, key), Some(value));
        }
        // Tear everything down: back to the root alone.
        for (filter, key) in model.keys() {
            prop_assert!(index.remove(filter, key).is_some());
        }
        prop_assert_eq!(index.node_count(), 1);
    }

    #[test]
    fn validation_agrees_with_naive_on_arbitrary_strings(s in "[a/+#\u{0}é$ ]{0,24}") {
        prop_assert_eq!(validate_topic_name(&s).is_ok(), naive::name_is_valid(&s));
        prop_assert_eq!(validate_topic_filter(&s).is_ok(), naive::filter_is_valid(&s));
        // Matching never panics, whatever the strings.
        let _ = matches_str(&s, &s);
    }

    #[test]
    fn shared_filters_round_trip(group in "[a-z0-9é_-]{1,8}", f in filter()) {
        let text = format!("$share/{group}/{f}");
        let shared = SharedFilter::parse(&text).unwrap().unwrap();
        prop_assert_eq!(shared.group(), group.as_str());
        prop_assert_eq!(shared.filter().as_str(), f.as_str());
        prop_assert_eq!(shared.to_string(), text);
    }

    #[test]
    fn shared_parse_never_panics(s in "[a/+#$share]{0,16}") {
        match SharedFilter::parse(&s) {
            Ok(Some(shared)) => prop_assert!(validate_topic_filter(shared.filter().as_str()).is_ok()),
            Ok(None) => prop_assert!(!s.starts_with("$share/")),
            Err(TopicError::InvalidSharedSubscription(_)) => prop_assert!(s.starts_with("$share/")),
            Err(_) => {}
        }
    }
}
