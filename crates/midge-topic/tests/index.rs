//! Behaviour of `SubscriptionIndex`: replace semantics, removal, pruning back to the
//! baseline node count, overlapping subscriptions, and very deep filters.
// Tests may unwrap and panic: a panic is how they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use midge_topic::{SubscriptionIndex, TopicFilter};

fn f(s: &str) -> TopicFilter {
    TopicFilter::new(s).unwrap()
}

fn sorted_filters<K: Ord + Clone, V>(
    index: &SubscriptionIndex<K, V>,
    topic: &str,
) -> Vec<(K, String)> {
    let mut got: Vec<_> = index
        .matches(topic)
        .into_iter()
        .map(|(k, _, filter)| (k.clone(), filter.as_str().to_owned()))
        .collect();
    got.sort();
    got
}

#[test]
fn empty_index_has_only_the_root() {
    let index: SubscriptionIndex<u32, u8> = SubscriptionIndex::new();
    assert!(index.is_empty());
    assert_eq!(index.len(), 0);
    assert_eq!(index.node_count(), 1);
    assert!(index.matches("a").is_empty());
    assert!(!index.has_match("a"));
}

#[test]
fn mqtt_3_8_4_3_resubscribe_replaces_the_value() {
    let mut index = SubscriptionIndex::new();
    assert_eq!(index.insert(&f("a/+"), "c1", 0u8), None);
    assert_eq!(index.insert(&f("a/+"), "c1", 2u8), Some(0));
    assert_eq!(index.len(), 1);
    assert_eq!(index.get(&f("a/+"), &"c1"), Some(&2));
    assert_eq!(index.matches("a/b"), vec![(&"c1", &2u8, &f("a/+"))]);
}

#[test]
fn mqtt_3_3_5_1_overlapping_filters_of_one_subscriber_are_all_reported() {
    let mut index = SubscriptionIndex::new();
    index.insert(&f("a/#"), 7u32, 0u8);
    index.insert(&f("a/+"), 7u32, 2u8);
    index.insert(&f("a/b"), 7u32, 1u8);
    index.insert(&f("a/c"), 7u32, 1u8);
    let mut hits: Vec<(u32, u8, String)> = index
        .matches("a/b")
        .into_iter()
        .map(|(k, v, fl)| (*k, *v, fl.to_string()))
        .collect();
    hits.sort();
    assert_eq!(
        hits,
        vec![
            (7, 0, "a/#".to_owned()),
            (7, 1, "a/b".to_owned()),
            (7, 2, "a/+".to_owned())
        ]
    );
    // The broker's rule: one delivery at the highest granted QoS.
    let mut best = None;
    index.for_each_match("a/b", |_, v, _| best = best.max(Some(*v)));
    assert_eq!(best, Some(2));
}

#[test]
fn one_filter_many_subscribers() {
    let mut index = SubscriptionIndex::new();
    for k in 0..100u32 {
        index.insert(&f("x/+/z"), k, k);
    }
    assert_eq!(index.len(), 100);
    assert_eq!(index.matches("x/y/z").len(), 100);
    assert_eq!(index.node_count(), 4);
}

#[test]
fn remove_returns_the_value_and_only_removes_that_pair() {
    let mut index = SubscriptionIndex::new();
    index.insert(&f("a/b"), 1u32, 'x');
    index.insert(&f("a/b"), 2u32, 'y');
    assert_eq!(index.remove(&f("a/b"), &3), None);
    assert_eq!(index.remove(&f("a/c"), &1), None);
    assert_eq!(index.remove(&f("a/+"), &1), None);
    assert_eq!(index.remove(&f("a/#"), &1), None);
    assert_eq!(index.remove(&f("a/b"), &1), Some('x'));
    assert_eq!(index.remove(&f("a/b"), &1), None);
    assert_eq!(index.len(), 1);
    assert_eq!(sorted_filters(&index, "a/b"), vec![(2, "a/b".to_owned())]);
    assert!(!index.contains(&f("a/b"), &1));
    assert!(index.contains(&f("a/b"), &2));
}

#[test]
fn node_counts_follow_the_shape_of_the_trie() {
    let mut index = SubscriptionIndex::new();
    index.insert(&f("a/b/c"), 1u8, ()); // root, a, b, c
    assert_eq!(index.node_count(), 4);
    index.insert(&f("a/b/#"), 1u8, ()); // `#` lives in b
    assert_eq!(index.node_count(), 4);
    index.insert(&f("a/+"), 1u8, ()); // + under a
    assert_eq!(index.node_count(), 5);
    index.insert(&f("#"), 1u8, ()); // at the root
    assert_eq!(index.node_count(), 5);

    // c goes; b stays because it holds `a/b/#`.
    index.remove(&f("a/b/c"), &1);
    assert_eq!(index.node_count(), 4);
    // b goes now; a stays for `a/+`.
    index.remove(&f("a/b/#"), &1);
    assert_eq!(index.node_count(), 3);
    index.remove(&f("a/+"), &1);
    assert_eq!(index.node_count(), 1);
    index.remove(&f("#"), &1);
    assert_eq!(index.node_count(), 1);
    assert!(index.is_empty());
}

#[test]
fn removing_a_middle_filter_keeps_the_longer_one() {
    let mut index = SubscriptionIndex::new();
    index.insert(&f("a/b"), 1u8, ());
    index.insert(&f("a/b/c/d"), 1u8, ());
    assert_eq!(index.node_count(), 5);
    index.remove(&f("a/b"), &1);
    assert_eq!(index.node_count(), 5);
    assert_eq!(
        sorted_filters(&index, "a/b/c/d"),
        vec![(1, "a/b/c/d".to_owned())]
    );
    index.remove(&f("a/b/c/d"), &1);
    assert_eq!(index.node_count(), 1);
}

/// A mix of filter shapes for the mass tests.
fn many_filters(n: usize) -> Vec<TopicFilter> {
    (0..n)
        .map(|i| match i % 6 {
            0 => f(&format!("site/{}/temp", i % 97)),
            1 => f(&format!("site/+/dev{i}/#")),
            2 => f(&format!("$SYS/broker/{i}")),
            3 => f(&format!("/{i}//é/日{}", i % 13)),
            4 => f(&format!("+/+/{i}")),
            _ => f(&format!("fleet/{}/+/{i}/#", i % 7)),
        })
        .collect()
}

#[test]
fn mass_unsubscribe_returns_node_count_to_baseline() {
    let mut index = SubscriptionIndex::new();
    let filters = many_filters(6_000);
    for (i, filter) in filters.iter().enumerate() {
        index.insert(filter, i % 50, i);
    }
    assert!(index.node_count() > 5_000);
    assert_eq!(index.len(), 6_000);
    for (i, filter) in filters.iter().enumerate() {
        assert_eq!(index.remove(filter, &(i % 50)), Some(i));
    }
    assert!(index.is_empty());
    assert_eq!(index.node_count(), 1);
}

#[test]
fn partial_unsubscribe_matches_a_fresh_index_of_the_survivors() {
    let mut index = SubscriptionIndex::new();
    let filters = many_filters(1_200);
    for (i, filter) in filters.iter().enumerate() {
        index.insert(filter, i % 5, i);
    }
    let mut fresh = SubscriptionIndex::new();
    for (i, filter) in filters.iter().enumerate() {
        if i % 3 == 0 {
            index.remove(filter, &(i % 5));
        } else {
            fresh.insert(filter, i % 5, i);
        }
    }
    assert_eq!(index.len(), fresh.len());
    assert_eq!(index.node_count(), fresh.node_count());
    for topic in [
        "site/3/temp",
        "site/x/dev1/a",
        "$SYS/broker/2",
        "/3//é/日3",
        "a/b/4",
        "fleet/1/x/8/y",
    ] {
        assert_eq!(
            sorted_filters(&index, topic),
            sorted_filters(&fresh, topic),
            "{topic}"
        );
    }
}

#[test]
fn remove_all_drops_every_filter_of_one_subscriber() {
    let mut index = SubscriptionIndex::new();
    index.insert(&f("a/#"), "gone", 1u8);
    index.insert(&f("a/b"), "gone", 2u8);
    index.insert(&f("+/b"), "gone", 0u8);
    index.insert(&f("a/b"), "stays", 1u8);
    let mut removed: Vec<(String, u8)> = index
        .remove_all(&"gone")
        .into_iter()
        .map(|(fl, v)| (fl.into_string(), v))
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        vec![
            ("+/b".to_owned(), 0),
            ("a/#".to_owned(), 1),
            ("a/b".to_owned(), 2)
        ]
    );
    assert_eq!(index.len(), 1);
    assert_eq!(
        sorted_filters(&index, "a/b"),
        vec![("stays", "a/b".to_owned())]
    );
    assert_eq!(index.node_count(), 3);
    assert!(index.remove_all(&"nobody").is_empty());
}

#[test]
fn for_each_subscription_visits_everything_once() {
    let mut index = SubscriptionIndex::new();
    let filters = many_filters(300);
    for (i, filter) in filters.iter().enumerate() {
        index.insert(filter, i, ());
    }
    let mut seen = Vec::new();
    index.for_each_subscription(|k, _, _| seen.push(*k));
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
}

#[test]
fn debug_prints_sizes_only() {
    let mut index = SubscriptionIndex::new();
    index.insert(&f("a/b"), 1u8, ());
    let text = format!("{index:?}");
    assert!(text.contains("len: 1"), "{text}");
    assert!(text.contains("nodes: 3"), "{text}");
}

#[test]
fn deepest_possible_filters_neither_recurse_nor_leak() {
    // 65535 separators: 65536 empty levels, the deepest valid filter and name.
    let slashes = "/".repeat(65_535);
    // `+/+/.../+`: 32768 single-level wildcards in 65535 bytes.
    let pluses = format!("{}+", "+/".repeat(32_767));
    let name_for_pluses = format!("{}x", "x/".repeat(32_767));
    let mut index = SubscriptionIndex::new();
    index.insert(&f(&slashes), 1u8, ());
    index.insert(&f(&pluses), 2u8, ());
    index.insert(&f(&format!("{}#", "/".repeat(65_534))), 3u8, ());
    assert_eq!(sorted_filters(&index, &slashes).len(), 2);
    assert_eq!(
        sorted_filters(&index, &name_for_pluses),
        vec![(2, pluses.clone())]
    );
    assert_eq!(index.remove(&f(&slashes), &1), Some(()));
    assert_eq!(index.remove(&f(&pluses), &2), Some(()));
    assert_eq!(index.node_count(), 65_535);
    // Dropping the remaining deep branch must not overflow the stack either.
    drop(index);

    let mut index = SubscriptionIndex::new();
    index.insert(&f(&slashes), 1u8, ());
    index.remove(&f(&slashes), &1);
    assert_eq!(index.node_count(), 1);
}

#[test]
fn many_pending_branches_spill_past_the_inline_stack() {
    // Both a literal and a `+` child at each of 40 levels: the lookup keeps more
    // branches pending than fit in place, and must still report every match.
    let mut index = SubscriptionIndex::new();
    let depth = 40;
    for i in 0..depth {
        let filter: Vec<&str> = (0..depth).map(|j| if j == i { "+" } else { "a" }).collect();
        index.insert(&f(&filter.join("/")), i, ());
    }
    let topic = vec!["a"; depth].join("/");
    assert_eq!(index.matches(&topic).len(), depth);
    let filter = vec!["+"; depth].join("/");
    index.insert(&f(&filter), depth, ());
    assert_eq!(index.matches(&topic).len(), depth + 1);
    assert!(midge_topic::INLINE_BRANCHES < depth);
}

#[test]
fn wide_levels_and_crowded_filters_grow_and_shrink_cleanly() {
    // Twenty children under one node and twenty subscribers on one filter: both
    // maps pass from their vector form to their tree form and back.
    let mut index = SubscriptionIndex::new();
    for i in 0..20u32 {
        index.insert(&f(&format!("wide/{i}")), i, i);
        index.insert(&f("crowded/+"), i, i);
    }
    assert_eq!(index.node_count(), 1 + 1 + 20 + 1 + 1);
    for i in 0..20u32 {
        assert_eq!(
            sorted_filters(&index, &format!("wide/{i}")),
            vec![(i, format!("wide/{i}"))]
        );
        assert_eq!(index.matches("crowded/x").len(), 20 - i as usize);
        assert_eq!(index.remove(&f(&format!("wide/{i}")), &i), Some(i));
        assert_eq!(index.remove(&f("crowded/+"), &i), Some(i));
        assert_eq!(index.remove(&f("crowded/+"), &i), None);
        assert!(!index.has_match(&format!("wide/{i}")));
    }
    assert!(index.is_empty());
    assert_eq!(index.node_count(), 1);
}

#[test]
fn index_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SubscriptionIndex<String, u8>>();
    assert_send_sync::<TopicFilter>();
    assert_send_sync::<midge_topic::TopicName>();
}
