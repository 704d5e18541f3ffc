//! The newtypes' conversions and accessors, and shared-subscription parsing.
// Tests may unwrap and panic: a panic is how they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use midge_topic::{
    SharedFilter, SharedFilterProblem, SubscriptionFilter, TopicError, TopicFilter, TopicName,
};

#[test]
fn newtypes_convert_and_display() {
    let name: TopicName = "sport/tennis".parse().unwrap();
    assert_eq!(name.as_str(), "sport/tennis");
    assert_eq!(name.to_string(), "sport/tennis");
    assert_eq!(name.as_ref(), "sport/tennis");
    assert_eq!(name, "sport/tennis");
    assert_eq!(name.len(), 12);
    assert!(!name.is_empty());
    assert_eq!(name.levels().collect::<Vec<_>>(), ["sport", "tennis"]);
    assert_eq!(String::from(name.clone()), "sport/tennis");
    assert_eq!(
        TopicName::try_from("a/b".to_owned()).unwrap().into_string(),
        "a/b"
    );
    assert_eq!(TopicName::try_from("a/+"), Err(TopicError::WildcardInName));

    let filter = TopicFilter::try_from("/a//+/#").unwrap();
    assert_eq!(filter.levels().collect::<Vec<_>>(), ["", "a", "", "+", "#"]);
    assert!(filter.has_wildcards());
    assert!(!TopicFilter::new("a/b").unwrap().has_wildcards());
    assert!(TopicFilter::from(name.clone()).matches(&name));
}

#[test]
fn mqtt_4_7_2_1_is_dollar_reports_a_leading_dollar() {
    assert!(TopicName::new("$SYS/x").unwrap().is_dollar());
    assert!(TopicFilter::new("$SYS/#").unwrap().is_dollar());
    assert!(!TopicName::new("a/$SYS").unwrap().is_dollar());
}

#[test]
fn errors_cite_their_statement() {
    let cases = [
        (TopicError::Empty, "[MQTT-4.7.3-1]"),
        (TopicError::TooLong { len: 70_000 }, "[MQTT-4.7.3-3]"),
        (TopicError::NullCharacter, "[MQTT-4.7.3-2]"),
        (TopicError::WildcardInName, "[MQTT-4.7.1-1]"),
        (TopicError::MultiLevelWildcardNotLast, "[MQTT-4.7.1-2]"),
        (TopicError::MultiLevelWildcardNotAlone, "[MQTT-4.7.1-2]"),
        (TopicError::SingleLevelWildcardNotAlone, "[MQTT-4.7.1-3]"),
    ];
    for (err, id) in cases {
        assert!(err.to_string().contains(id), "{err}");
    }
    assert!(TopicError::TooLong { len: 70_000 }
        .to_string()
        .contains("70000"));
}

#[test]
fn shared_filter_splits_group_and_filter() {
    let shared = SharedFilter::parse("$share/g1/sensors/+/temp")
        .unwrap()
        .unwrap();
    assert_eq!(shared.group(), "g1");
    assert_eq!(shared.filter().as_str(), "sensors/+/temp");
    assert_eq!(shared.to_string(), "$share/g1/sensors/+/temp");
    let (group, filter) = shared.into_parts();
    assert_eq!((group.as_str(), filter.as_str()), ("g1", "sensors/+/temp"));

    // The filter part may itself be `#`, start with `$`, or have empty levels.
    for (text, group, filter) in [
        ("$share/g/#", "g", "#"),
        ("$share/g//", "g", "/"),
        ("$share/g/$SYS/#", "g", "$SYS/#"),
        ("$share/é/日本", "é", "日本"),
    ] {
        let shared = SharedFilter::parse(text).unwrap().unwrap();
        assert_eq!(
            (shared.group(), shared.filter().as_str()),
            (group, filter),
            "{text}"
        );
    }
}

#[test]
fn plain_filters_are_not_shared() {
    for text in ["a/b", "$share", "$shared/g/a", "share/g/a", "#", "$SYS/#"] {
        assert_eq!(SharedFilter::parse(text), Ok(None), "{text}");
        assert_eq!(
            SubscriptionFilter::parse(text).unwrap(),
            SubscriptionFilter::Plain(TopicFilter::new(text).unwrap())
        );
    }
    assert_eq!(
        SubscriptionFilter::parse("a/#/b"),
        Err(TopicError::MultiLevelWildcardNotLast)
    );
}

#[test]
fn malformed_shared_filters_are_rejected() {
    use SharedFilterProblem::{EmptyGroup, MissingFilter, WildcardInGroup};
    let cases = [
        (
            "$share/",
            TopicError::InvalidSharedSubscription(MissingFilter),
        ),
        (
            "$share/g",
            TopicError::InvalidSharedSubscription(MissingFilter),
        ),
        (
            "$share/g/",
            TopicError::InvalidSharedSubscription(MissingFilter),
        ),
        (
            "$share//a",
            TopicError::InvalidSharedSubscription(EmptyGroup),
        ),
        (
            "$share/+/a",
            TopicError::InvalidSharedSubscription(WildcardInGroup),
        ),
        (
            "$share/g#/a",
            TopicError::InvalidSharedSubscription(WildcardInGroup),
        ),
        ("$share/g/a/#/b", TopicError::MultiLevelWildcardNotLast),
        ("$share/g/a+", TopicError::SingleLevelWildcardNotAlone),
        ("$share/g\0/a", TopicError::NullCharacter),
    ];
    for (text, err) in cases {
        assert_eq!(SharedFilter::parse(text), Err(err), "{text:?}");
        assert_eq!(SubscriptionFilter::parse(text), Err(err), "{text:?}");
    }
    // The whole string, prefix included, must respect [MQTT-4.7.3-3].
    let long = format!("$share/g/{}", "a".repeat(65_530));
    assert_eq!(
        SharedFilter::parse(&long),
        Err(TopicError::TooLong { len: 65_539 })
    );
}

#[test]
fn subscription_filter_exposes_the_matching_filter() {
    let shared = SubscriptionFilter::parse("$share/g/a/+").unwrap();
    assert!(matches!(shared, SubscriptionFilter::Shared(_)));
    assert_eq!(shared.topic_filter().as_str(), "a/+");
    let plain = SubscriptionFilter::parse("a/+").unwrap();
    assert_eq!(plain.topic_filter().as_str(), "a/+");
}
