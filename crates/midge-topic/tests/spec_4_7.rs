//! Every example of MQTT 3.1.1 section 4.7, as table tests named after the
//! normative statement they illustrate. Each match case is checked three ways: the
//! single-pair matcher, the subscription index, and the naive reference matcher.
// Tests may unwrap and panic: a panic is how they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use midge_topic::{
    matches, matches_str, naive, validate_topic_filter, validate_topic_name, SubscriptionIndex,
    TopicError, TopicFilter, TopicName,
};

/// Asserts that `filter` matches `name` exactly when `expected`, by every route.
fn check(filter: &str, name: &str, expected: bool) {
    let f = TopicFilter::new(filter).unwrap();
    let n = TopicName::new(name).unwrap();
    assert_eq!(matches(&f, &n), expected, "matches({filter:?}, {name:?})");
    assert_eq!(
        matches_str(filter, name),
        expected,
        "matches_str({filter:?}, {name:?})"
    );
    assert_eq!(
        naive::matches(filter, name),
        expected,
        "naive({filter:?}, {name:?})"
    );
    let mut index = SubscriptionIndex::new();
    index.insert(&f, 1u32, ());
    assert_eq!(
        index.has_match(name),
        expected,
        "index({filter:?}, {name:?})"
    );
}

fn table(rows: &[(&str, &str, bool)]) {
    for &(filter, name, expected) in rows {
        check(filter, name, expected);
    }
}

#[test]
fn mqtt_4_7_1_1_wildcards_are_rejected_in_topic_names() {
    for name in [
        "sport/+",
        "+",
        "#",
        "sport/#",
        "sport+",
        "a#b",
        "+/tennis/#",
    ] {
        assert_eq!(
            validate_topic_name(name),
            Err(TopicError::WildcardInName),
            "{name:?}"
        );
        assert!(TopicName::new(name).is_err());
    }
}

#[test]
fn mqtt_4_7_1_1_wildcards_are_allowed_in_topic_filters() {
    for filter in ["sport/+", "+", "#", "sport/#", "+/tennis/#"] {
        assert_eq!(validate_topic_filter(filter), Ok(()), "{filter:?}");
    }
}

#[test]
fn mqtt_4_7_1_2_multi_level_wildcard_matches_parent_and_any_children() {
    table(&[
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/tennis/player1/#", "sport/tennis/player2", false),
        ("sport/tennis/player1/#", "sport/tennis", false),
    ]);
}

#[test]
fn mqtt_4_7_1_2_multi_level_wildcard_matches_the_singular_parent() {
    table(&[
        ("sport/#", "sport", true),
        ("sport/#", "sport/", true),
        ("sport/#", "sports", false),
    ]);
}

#[test]
fn mqtt_4_7_1_2_lone_multi_level_wildcard_is_valid_and_matches_everything() {
    assert_eq!(validate_topic_filter("#"), Ok(()));
    table(&[
        ("#", "sport", true),
        ("#", "sport/tennis/player1", true),
        ("#", "/", true),
        ("#", "/finance", true),
    ]);
}

#[test]
fn mqtt_4_7_1_2_multi_level_wildcard_after_separator_is_valid() {
    assert_eq!(validate_topic_filter("sport/tennis/#"), Ok(()));
    assert_eq!(validate_topic_filter("/#"), Ok(()));
}

#[test]
fn mqtt_4_7_1_2_multi_level_wildcard_must_be_alone_in_its_level() {
    for filter in ["sport/tennis#", "#sport", "sport/#tennis", "a/b#/c", "##"] {
        let err = validate_topic_filter(filter).unwrap_err();
        assert!(
            matches!(
                err,
                TopicError::MultiLevelWildcardNotAlone | TopicError::MultiLevelWildcardNotLast
            ),
            "{filter:?}: {err:?}"
        );
    }
    assert_eq!(
        validate_topic_filter("sport/tennis#"),
        Err(TopicError::MultiLevelWildcardNotAlone)
    );
}

#[test]
fn mqtt_4_7_1_2_multi_level_wildcard_must_be_last() {
    for filter in ["sport/tennis/#/ranking", "#/", "#/a", "a/#/+"] {
        assert_eq!(
            validate_topic_filter(filter),
            Err(TopicError::MultiLevelWildcardNotLast),
            "{filter:?}"
        );
    }
}

#[test]
fn mqtt_4_7_1_3_single_level_wildcard_matches_exactly_one_level() {
    table(&[
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player2", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/tennis/+", "sport/tennis", false),
    ]);
}

#[test]
fn mqtt_4_7_1_3_single_level_wildcard_does_not_match_parent_but_matches_empty_level() {
    table(&[("sport/+", "sport", false), ("sport/+", "sport/", true)]);
}

#[test]
fn mqtt_4_7_1_3_single_level_wildcard_valid_placements() {
    for filter in [
        "+",
        "+/tennis/#",
        "sport/+/player1",
        "+/+",
        "/+",
        "+/",
        "+//+",
    ] {
        assert_eq!(validate_topic_filter(filter), Ok(()), "{filter:?}");
    }
}

#[test]
fn mqtt_4_7_1_3_single_level_wildcard_must_occupy_a_whole_level() {
    for filter in ["sport+", "+sport", "sport/+tennis", "a/b+/c", "++", "+#"] {
        assert_eq!(
            validate_topic_filter(filter),
            Err(TopicError::SingleLevelWildcardNotAlone),
            "{filter:?}"
        );
    }
}

#[test]
fn mqtt_4_7_1_3_leading_empty_level_is_matched_by_single_level_wildcard() {
    table(&[
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
    ]);
}

#[test]
fn mqtt_4_7_1_3_wildcards_combine() {
    table(&[
        ("+/tennis/#", "sport/tennis", true),
        ("+/tennis/#", "sport/tennis/player1/ranking", true),
        ("+/tennis/#", "sport/golf", false),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("sport/+/player1", "sport/tennis/player2", false),
    ]);
}

#[test]
fn mqtt_4_7_2_1_leading_wildcards_do_not_match_dollar_topics() {
    table(&[
        ("#", "$SYS/monitor/Clients", false),
        ("#", "$SYS", false),
        ("#", "$", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("+", "$SYS", false),
        ("+/#", "$SYS/x", false),
    ]);
}

#[test]
fn mqtt_4_7_2_1_dollar_filters_match_dollar_topics() {
    table(&[
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/#", "$SYS/", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("$SYS/+/Clients", "$SYS/monitor/Clients", true),
    ]);
}

#[test]
fn mqtt_4_7_2_1_dollar_only_matters_in_the_first_level() {
    table(&[
        ("+/$SYS", "a/$SYS", true),
        ("#", "a/$SYS", true),
        ("a/+", "a/$x", true),
        ("a/#", "a/$x/y", true),
    ]);
}

#[test]
fn mqtt_4_7_2_1_hash_and_sys_hash_together_cover_both_kinds() {
    let mut index = SubscriptionIndex::new();
    index.insert(&TopicFilter::new("#").unwrap(), "client", 0u8);
    index.insert(&TopicFilter::new("$SYS/#").unwrap(), "client", 1u8);
    let got: Vec<_> = index
        .matches("$SYS/broker/uptime")
        .into_iter()
        .map(|m| m.2.as_str())
        .collect();
    assert_eq!(got, ["$SYS/#"]);
    let got: Vec<_> = index
        .matches("sport/tennis")
        .into_iter()
        .map(|m| m.2.as_str())
        .collect();
    assert_eq!(got, ["#"]);
}

#[test]
fn mqtt_4_7_3_1_names_and_filters_are_not_empty() {
    assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
    assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
    assert_eq!(TopicName::new(""), Err(TopicError::Empty));
    assert_eq!("".parse::<TopicFilter>(), Err(TopicError::Empty));
}

#[test]
fn mqtt_4_7_3_1_a_lone_separator_is_a_valid_name_and_filter() {
    assert_eq!(validate_topic_name("/"), Ok(()));
    assert_eq!(validate_topic_filter("/"), Ok(()));
    table(&[
        ("/", "/", true),
        ("+/+", "/", true),
        ("+", "/", false),
        ("/", "//", false),
    ]);
}

#[test]
fn mqtt_4_7_3_2_null_character_is_rejected() {
    for s in ["\0", "a\0", "a/\0/b", "\0/#"] {
        assert_eq!(
            validate_topic_name(s),
            Err(TopicError::NullCharacter),
            "{s:?}"
        );
        assert_eq!(
            validate_topic_filter(s),
            Err(TopicError::NullCharacter),
            "{s:?}"
        );
    }
}

#[test]
fn mqtt_4_7_3_3_length_limit_is_65535_bytes() {
    let max = "a".repeat(65_535);
    assert_eq!(validate_topic_name(&max), Ok(()));
    assert_eq!(validate_topic_filter(&max), Ok(()));
    let over = "a".repeat(65_536);
    assert_eq!(
        validate_topic_name(&over),
        Err(TopicError::TooLong { len: 65_536 })
    );
    assert_eq!(
        validate_topic_filter(&over),
        Err(TopicError::TooLong { len: 65_536 })
    );
}

#[test]
fn mqtt_4_7_3_3_length_limit_counts_utf8_bytes_not_characters() {
    // "日" is three bytes: 21845 of them are exactly 65535 bytes.
    let max = "日".repeat(21_845);
    assert_eq!(validate_topic_name(&max), Ok(()));
    let over = format!("{max}a");
    assert_eq!(
        validate_topic_name(&over),
        Err(TopicError::TooLong { len: 65_536 })
    );
}

#[test]
fn mqtt_4_7_3_4_matching_is_exact_without_normalisation() {
    table(&[
        ("ACCOUNTS", "Accounts", false),
        ("Accounts", "Accounts", true),
        ("Accounts payable", "Accounts payable", true),
        ("/finance", "finance", false),
        ("finance", "/finance", false),
        ("finance/", "finance", false),
        // Precomposed é (U+00E9) against e + combining acute (U+0065 U+0301).
        ("caf\u{e9}", "cafe\u{301}", false),
        ("caf\u{e9}/+", "caf\u{e9}/日本", true),
        ("+/日本", "caf\u{e9}/日本", true),
    ]);
}

#[test]
fn section_4_7_3_spaces_and_case_are_significant_in_names() {
    for name in ["Accounts payable", " ", "a b/c d", "ACCOUNTS"] {
        assert_eq!(validate_topic_name(name), Ok(()), "{name:?}");
    }
}

#[test]
fn section_4_7_1_1_adjacent_separators_make_empty_levels() {
    table(&[
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("a/b", "a//b", false),
        ("a/#", "a//b", true),
        ("+/+/+", "//", true),
        ("+/+", "//", false),
    ]);
}
