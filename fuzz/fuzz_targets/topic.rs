//! Fuzz target for `midge-topic`: validation, matching and the subscription index,
//! each checked against the crate's naive reference versions.
//!
//! Input: text split into lines. Every line is validated as a name and as a filter
//! (and parsed as a shared filter); valid filters are subscribed by one of four
//! subscribers chosen by line number; valid names are looked up. Then half of the
//! subscriptions are removed, lookups are compared again, and finally everything is
//! removed and the index must be back to its single root node.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midge_topic::naive::{self, NaiveIndex};
use midge_topic::{
    matches_str, validate_topic_filter, validate_topic_name, SharedFilter, SubscriptionFilter,
    SubscriptionIndex, TopicFilter,
};

/// Lines looked at per input: every (filter, name) pair is checked against the
/// naive matcher, so this caps the quadratic part and keeps executions fast.
const MAX_LINES: usize = 16;

fn sorted_index_matches(index: &SubscriptionIndex<u8, usize>, name: &str) -> Vec<(String, u8, usize)> {
    let mut got: Vec<_> = index
        .matches(name)
        .into_iter()
        .map(|(k, v, f)| (f.as_str().to_owned(), *k, *v))
        .collect();
    got.sort();
    got
}

fn sorted_naive_matches(naive: &NaiveIndex<u8, usize>, name: &str) -> Vec<(String, u8, usize)> {
    let mut want: Vec<_> = naive.matching(name).cloned().collect();
    want.sort();
    want
}

fn check_all(index: &SubscriptionIndex<u8, usize>, naive: &NaiveIndex<u8, usize>, names: &[&str]) {
    assert_eq!(index.len(), naive.entries.len());
    for name in names {
        assert_eq!(sorted_index_matches(index, name), sorted_naive_matches(naive, name), "name {name:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').take(MAX_LINES).collect();

    let mut filters: Vec<TopicFilter> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for line in &lines {
        let name_ok = validate_topic_name(line).is_ok();
        let filter_ok = validate_topic_filter(line).is_ok();
        assert_eq!(name_ok, naive::name_is_valid(line), "name validity of {line:?}");
        assert_eq!(filter_ok, naive::filter_is_valid(line), "filter validity of {line:?}");
        // Every name is a filter.
        assert!(!name_ok || filter_ok);
        if let Ok(Some(shared)) = SharedFilter::parse(line) {
            assert!(filter_ok);
            assert_eq!(shared.to_string(), *line);
        }
        let _ = SubscriptionFilter::parse(line);
        if name_ok {
            names.push(line);
        }
        if let Ok(filter) = TopicFilter::new(*line) {
            filters.push(filter);
        }
    }

    for filter in &filters {
        for name in &names {
            assert_eq!(
                matches_str(filter.as_str(), name),
                naive::matches(filter.as_str(), name),
                "filter {filter:?} name {name:?}"
            );
        }
    }

    let mut index: SubscriptionIndex<u8, usize> = SubscriptionIndex::new();
    let mut reference: NaiveIndex<u8, usize> = NaiveIndex::new();
    for (i, filter) in filters.iter().enumerate() {
        let key = (i % 4) as u8;
        assert_eq!(index.insert(filter, key, i), reference.insert(filter.as_str(), key, i));
    }
    check_all(&index, &reference, &names);

    for (i, filter) in filters.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let key = (i % 4) as u8;
        assert_eq!(index.remove(filter, &key), reference.remove(filter.as_str(), &key));
    }
    check_all(&index, &reference, &names);

    let removed = index.remove_all(&0);
    assert!(removed.iter().all(|(f, _)| reference.remove(f.as_str(), &0).is_some()));
    check_all(&index, &reference, &names);

    for (i, filter) in filters.iter().enumerate() {
        let key = (i % 4) as u8;
        assert_eq!(index.remove(filter, &key), reference.remove(filter.as_str(), &key));
    }
    assert!(index.is_empty());
    assert_eq!(index.node_count(), 1);
});
