//! ACL files: Mosquitto's syntax, rule selection, `%c`/`%u`, `deny`,
//! subscription coverage, and `FileAuth`'s CONNACK codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use midge_auth::{
    covers, overlaps, Access, AclFile, AclProblem, FileAuth, PasswordFile, PasswordHash,
};
use midge_broker::Auth;
use midge_codec::ConnectReturnCode;

const ACL: &str = "\
# anonymous clients
topic read public/#
topic write public/inbox

user alice
topic readwrite home/alice/#
topic deny home/alice/secret
topic $SYS/#

user bob
topic read home/+/temp
topic write with space/x

pattern write devices/%c/state
pattern read users/%u/#
pattern deny users/%u/private
";

fn acl() -> AclFile {
    AclFile::parse(ACL).unwrap()
}

#[test]
fn rules_are_grouped_as_mosquitto_groups_them() {
    let acl = acl();
    assert_eq!(acl.anonymous_rules().len(), 2);
    assert_eq!(acl.user_rules("alice").len(), 3);
    assert_eq!(acl.user_rules("alice")[2].access, Access::ReadWrite);
    assert_eq!(acl.user_rules("bob")[1].filter, "with space/x");
    assert_eq!(acl.user_rules("carol").len(), 0);
    assert_eq!(acl.patterns().len(), 3);
}

#[test]
fn anonymous_rules_apply_only_without_a_user_name() {
    let acl = acl();
    assert!(acl.may_publish("c", None, "public/inbox"));
    assert!(!acl.may_publish("c", None, "public/other"));
    assert!(acl.may_subscribe("c", None, "public/#"));
    assert!(!acl.may_subscribe("c", Some("alice"), "public/#"));
    assert!(!acl.may_publish("c", Some("alice"), "public/inbox"));
}

#[test]
fn user_rules_grant_by_access_kind() {
    let acl = acl();
    assert!(acl.may_publish("c", Some("alice"), "home/alice/kitchen"));
    assert!(acl.may_subscribe("c", Some("alice"), "home/alice/kitchen/+"));
    assert!(acl.may_publish("c", Some("bob"), "with space/x"));
    // read only: no publishing.
    assert!(!acl.may_publish("c", Some("bob"), "home/alice/temp"));
    assert!(acl.may_subscribe("c", Some("bob"), "home/alice/temp"));
    // write only: no subscribing.
    assert!(!acl.may_subscribe("c", Some("bob"), "with space/x"));
    // Unknown users have only the patterns.
    assert!(!acl.may_publish("c", Some("carol"), "home/alice/kitchen"));
}

#[test]
fn deny_wins_over_a_broader_grant() {
    let acl = acl();
    assert!(!acl.may_publish("c", Some("alice"), "home/alice/secret"));
    // A subscription that could receive a denied topic is refused too.
    assert!(!acl.may_subscribe("c", Some("alice"), "home/alice/#"));
    assert!(!acl.may_subscribe("c", Some("alice"), "home/alice/+"));
    assert!(acl.may_subscribe("c", Some("alice"), "home/alice/kitchen/#"));
}

#[test]
fn patterns_substitute_client_id_and_user_name() {
    let acl = acl();
    assert!(acl.may_publish("dev1", None, "devices/dev1/state"));
    assert!(!acl.may_publish("dev1", None, "devices/dev2/state"));
    assert!(acl.may_subscribe("c", Some("carol"), "users/carol/inbox"));
    assert!(!acl.may_subscribe("c", Some("carol"), "users/dave/inbox"));
    assert!(!acl.may_subscribe("c", Some("carol"), "users/carol/#"));
    assert!(acl.may_subscribe("c", Some("carol"), "users/carol/+/x"));
    // %u patterns do not concern anonymous clients.
    assert!(!acl.may_subscribe("c", None, "users/%u/inbox"));
}

#[test]
fn wildcards_in_substituted_values_grant_nothing_and_deny_everything() {
    let acl = acl();
    // A client id with a wildcard cannot widen its pattern.
    assert!(!acl.may_publish("+", None, "devices/x/state"));
    assert!(!acl.may_publish("a/b", None, "devices/a/b/state"));
    // A user name with a wildcard hits the deny pattern: fail closed.
    assert!(!acl.may_subscribe("c", Some("#"), "users/x/inbox"));
    assert!(!acl.may_publish("c", Some("al+ce"), "devices/c/state"));
}

#[test]
fn mqtt_4_7_2_1_wildcard_rules_do_not_reach_dollar_topics() {
    let acl = AclFile::parse("topic #\nuser root\ntopic $SYS/#\n").unwrap();
    assert!(acl.may_publish("c", None, "a/b"));
    assert!(!acl.may_publish("c", None, "$SYS/broker"));
    assert!(!acl.may_subscribe("c", None, "$SYS/#"));
    assert!(acl.may_subscribe("c", None, "#"));
    assert!(acl.may_subscribe("c", Some("root"), "$SYS/broker/+"));
    assert!(!acl.may_subscribe("c", Some("root"), "#"));
}

#[test]
fn shared_subscriptions_are_checked_by_their_filter() {
    let acl = AclFile::parse("topic read jobs/#\n").unwrap();
    assert!(acl.may_subscribe("c", None, "$share/workers/jobs/+"));
    assert!(!acl.may_subscribe("c", None, "$share/workers/other"));
    assert!(!acl.may_subscribe("c", None, "not/a/#/filter"));
}

#[test]
fn coverage_and_overlap_of_filters() {
    for (rule, sub, covered) in [
        ("a/#", "a", true),
        ("a/#", "a/+/b", true),
        ("a/+", "a/#", false),
        ("a/+/#", "a/#", false),
        ("a", "a/#", false),
        ("+/x", "+/x", true),
        ("a/b", "a/+", false),
        ("#", "+/x", true),
        ("#", "$SYS/x", false),
        ("+", "$x", false),
        ("$x", "$x", true),
    ] {
        assert_eq!(covers(rule, sub), covered, "{rule} covers {sub}");
    }
    for (a, b, overlap) in [
        ("a/#", "a", true),
        ("a/+", "a/b/c", false),
        ("a/+/c", "+/b/#", true),
        ("a/b", "a/c", false),
        ("#", "$SYS/#", false),
        ("+/#", "$x", false),
        ("a", "a/b", false),
    ] {
        assert_eq!(overlaps(a, b), overlap, "{a} overlaps {b}");
        assert_eq!(overlaps(b, a), overlap, "{b} overlaps {a}");
    }
}

fn parse_error(text: &str) -> (usize, AclProblem) {
    let e = AclFile::parse(text).unwrap_err();
    (e.line, e.problem)
}

#[test]
fn bad_lines_are_refused_by_line() {
    assert_eq!(
        parse_error("# c\ntopics a\n"),
        (2, AclProblem::UnknownKeyword("topics".into()))
    );
    assert_eq!(parse_error("user\n"), (1, AclProblem::MissingUser));
    assert_eq!(parse_error("topic\n"), (1, AclProblem::MissingTopic));
    assert_eq!(parse_error("topic read\n"), (1, AclProblem::MissingTopic));
    assert_eq!(
        parse_error("pattern write a/#/b\n"),
        (1, AclProblem::BadTopic("a/#/b".into()))
    );
    // Indented lines and CR LF are fine.
    let acl = AclFile::parse("  user x\r\n\ttopic write a\r\n").unwrap();
    assert!(acl.may_publish("c", Some("x"), "a"));
}

fn passwords() -> PasswordFile {
    let mut file = PasswordFile::new();
    file.set(
        "alice",
        PasswordHash::pbkdf2(b"wonderland", b"salt-alice", 5).unwrap(),
    )
    .unwrap();
    file
}

fn auth(passwords: Option<PasswordFile>, allow_anonymous: bool) -> FileAuth {
    FileAuth {
        passwords,
        acl: Some(acl()),
        allow_anonymous,
    }
}

#[test]
fn connack_0x00_for_a_listed_user_with_the_right_password() {
    let mut a = auth(Some(passwords()), false);
    assert_eq!(a.connect("c", Some("alice"), Some(b"wonderland")), Ok(()));
}

#[test]
fn connack_0x04_for_a_wrong_password() {
    let mut a = auth(Some(passwords()), true);
    assert_eq!(
        a.connect("c", Some("alice"), Some(b"Wonderland")),
        Err(ConnectReturnCode::BadUsernameOrPassword)
    );
    assert_eq!(
        a.connect("c", Some("alice"), None),
        Err(ConnectReturnCode::BadUsernameOrPassword)
    );
}

#[test]
fn connack_0x04_for_an_unknown_user() {
    let mut a = auth(Some(passwords()), true);
    assert_eq!(
        a.connect("c", Some("mallory"), Some(b"wonderland")),
        Err(ConnectReturnCode::BadUsernameOrPassword)
    );
}

#[test]
fn connack_0x05_for_anonymous_clients_when_anonymous_access_is_off() {
    let mut a = auth(Some(passwords()), false);
    assert_eq!(
        a.connect("c", None, None),
        Err(ConnectReturnCode::NotAuthorized)
    );
    let mut open = auth(Some(passwords()), true);
    assert_eq!(open.connect("c", None, None), Ok(()));
}

#[test]
fn without_a_password_file_a_user_name_is_unchecked_and_counts_as_anonymous() {
    let mut closed = auth(None, false);
    assert_eq!(
        closed.connect("c", Some("alice"), Some(b"anything")),
        Err(ConnectReturnCode::NotAuthorized)
    );
    let mut open = auth(None, true);
    assert_eq!(open.connect("c", Some("alice"), Some(b"anything")), Ok(()));
    // Its name still picks its ACL rules.
    assert!(open.may_publish("c", Some("alice"), "home/alice/x"));
}

#[test]
fn mqtt_3_3_5_2_and_3_8_4_5_hook_answers_follow_the_acl() {
    let a = auth(None, true);
    assert!(!a.may_publish("c", None, "elsewhere"));
    assert!(!a.may_subscribe("c", None, "elsewhere/#"));
    let no_acl = FileAuth {
        passwords: None,
        acl: None,
        allow_anonymous: true,
    };
    assert!(no_acl.may_publish("c", None, "elsewhere"));
    assert!(no_acl.may_subscribe("c", None, "#"));
}

mod props {
    use super::*;
    use midge_topic::matches_str;
    use proptest::prelude::*;

    fn filter() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof!["a", "b", "\\$s", "\\+", ""], 1..4).prop_flat_map(
            |levels| {
                let joined = levels.join("/");
                prop_oneof![
                    Just(joined.clone()),
                    Just(format!("{joined}/#")),
                    Just("#".to_string())
                ]
            },
        )
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof!["a", "b", "\\$s", ""], 1..6)
            .prop_map(|levels| levels.join("/"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// `covers` never grants a topic the rule does not match, and
        /// `overlaps` never misses a topic both match (midge-topic decides).
        #[test]
        fn filter_relations_agree_with_midge_topic(a in filter(), b in filter(), t in topic()) {
            prop_assume!(midge_topic::validate_topic_filter(&a).is_ok());
            prop_assume!(midge_topic::validate_topic_filter(&b).is_ok());
            prop_assume!(midge_topic::validate_topic_name(&t).is_ok());
            if covers(&a, &b) && matches_str(&b, &t) {
                prop_assert!(matches_str(&a, &t), "{a} covers {b} but misses {t}");
            }
            if matches_str(&a, &t) && matches_str(&b, &t) {
                prop_assert!(overlaps(&a, &b), "{a} and {b} both match {t}");
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[a-z %#+/\\n]{0,200}", who in "[a-z+#/%]{0,6}") {
            if let Ok(acl) = AclFile::parse(&text) {
                let _ = acl.may_publish(&who, Some(&who), "a/b");
                let _ = acl.may_subscribe(&who, Some(&who), "a/#");
            }
        }
    }
}

#[test]
fn certificate_named_user_skips_the_password_but_not_the_acl() {
    let passwords = PasswordFile::parse("").unwrap();
    let acl = AclFile::parse("user alice\ntopic readwrite alice/#\n").unwrap();
    let mut auth = FileAuth {
        passwords: Some(passwords),
        acl: Some(acl),
        allow_anonymous: false,
    };
    // Not in the password file, no password: refused through CONNECT...
    assert_eq!(
        auth.connect("c1", Some("alice"), None),
        Err(ConnectReturnCode::BadUsernameOrPassword)
    );
    // ...accepted when a verified certificate names the user.
    assert_eq!(auth.connect_certified("c1", "alice"), Ok(()));
    assert!(auth.may_publish("c1", Some("alice"), "alice/x"));
    assert!(!auth.may_publish("c1", Some("alice"), "bob/x"));
}
