//! Password files: the Mosquitto formats, golden vectors computed with an
//! independent PBKDF2 implementation, and refusals by line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use midge_auth::{PasswdProblem, PasswordFile, PasswordHash, MAX_ITERATIONS};

const SALT: &[u8] = b"0123456789ab";
/// `$7$` for password "secret", salt "0123456789ab", 101 iterations,
/// computed with Python's hashlib.pbkdf2_hmac('sha512', ...).
const GOLDEN_7: &str = "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==";
/// `$6$`: SHA-512 over "secret" then the salt, computed with hashlib.
const GOLDEN_6: &str = "$6$MDEyMzQ1Njc4OWFi$qEXipeLbgxRlwd06QHfY5WITkUZg0jLg9SZbXzq3ifXjfj+v3GbJGrSfC5PAg3UNCS+UFfbhUIZX4bmIAs330w==";

#[test]
fn pbkdf2_matches_an_independent_implementation() {
    let hash = PasswordHash::pbkdf2(b"secret", SALT, 101).unwrap();
    assert_eq!(hash.to_string(), GOLDEN_7);
    assert_eq!(PasswordHash::parse(GOLDEN_7).unwrap(), hash);
}

#[test]
fn golden_entries_verify_only_their_password() {
    for golden in [GOLDEN_7, GOLDEN_6] {
        let hash = PasswordHash::parse(golden).unwrap();
        assert!(hash.verify(b"secret"), "{golden}");
        assert!(!hash.verify(b"secreT"), "{golden}");
        assert!(!hash.verify(b""), "{golden}");
        assert!(!hash.verify(b"secret\0"), "{golden}");
    }
}

#[test]
fn file_round_trips_in_order_and_skips_comments() {
    let text = format!("# users\nzed:{GOLDEN_7}\r\n\nalice:{GOLDEN_6}\n");
    let file = PasswordFile::parse(&text).unwrap();
    assert_eq!(file.users(), ["zed", "alice"]);
    assert!(file.verify("zed", b"secret"));
    assert!(file.verify("alice", b"secret"));
    assert!(!file.verify("bob", b"secret"));
    let written = file.to_string();
    assert_eq!(written, format!("zed:{GOLDEN_7}\nalice:{GOLDEN_6}\n"));
    assert_eq!(PasswordFile::parse(&written).unwrap(), file);
}

#[test]
fn set_replaces_in_place_and_remove_deletes() {
    let mut file = PasswordFile::parse(&format!("a:{GOLDEN_7}\nb:{GOLDEN_7}\n")).unwrap();
    file.set("a", PasswordHash::pbkdf2(b"new", SALT, 3).unwrap())
        .unwrap();
    assert_eq!(file.users(), ["a", "b"]);
    assert!(file.verify("a", b"new") && !file.verify("a", b"secret"));
    assert!(file.remove("b"));
    assert!(!file.remove("b"));
    assert_eq!(file.users(), ["a"]);
    assert_eq!(
        file.set("c:d", PasswordHash::pbkdf2(b"x", SALT, 1).unwrap()),
        Err(PasswdProblem::BadUserName)
    );
}

fn problem(text: &str) -> (usize, PasswdProblem) {
    let e = PasswordFile::parse(text).unwrap_err();
    (e.line, e.problem)
}

#[test]
fn plain_text_and_malformed_lines_are_refused_by_line() {
    assert_eq!(problem("# c\nuser:secret\n"), (2, PasswdProblem::NotHashed));
    assert_eq!(problem("user\n"), (1, PasswdProblem::NoSeparator));
    assert_eq!(
        problem(&format!(":{GOLDEN_7}")),
        (1, PasswdProblem::BadUserName)
    );
    assert_eq!(
        problem(&format!("a:{GOLDEN_7}\na:{GOLDEN_6}")),
        (2, PasswdProblem::DuplicateUser)
    );
    assert_eq!(
        problem("a:$5$abc$def"),
        (1, PasswdProblem::UnknownFormat("5".into()))
    );
    assert_eq!(
        problem("a:$7$0$MDEy$MDEy"),
        (1, PasswdProblem::BadIterations)
    );
    assert_eq!(
        problem("a:$7$x$MDEy$MDEy"),
        (1, PasswdProblem::BadIterations)
    );
    let too_many = format!("a:$7${}$MDEy$MDEy", u64::from(MAX_ITERATIONS) + 1);
    assert_eq!(problem(&too_many), (1, PasswdProblem::BadIterations));
    assert_eq!(problem("a:$7$10$!!$MDEy"), (1, PasswdProblem::BadBase64));
    assert_eq!(
        problem("a:$7$10$MDEy$MDEy"),
        (1, PasswdProblem::BadHashLength)
    );
    assert_eq!(problem("a:$7$10$$MDEy"), (1, PasswdProblem::BadSalt));
    assert_eq!(
        problem(&format!("a:{GOLDEN_7}$x")),
        (1, PasswdProblem::BadField)
    );
    assert_eq!(problem("a:$6$MDEy"), (1, PasswdProblem::BadField));
}

#[test]
fn hashing_refuses_bad_parameters() {
    assert_eq!(
        PasswordHash::pbkdf2(b"x", b"", 10),
        Err(PasswdProblem::BadSalt)
    );
    assert_eq!(
        PasswordHash::pbkdf2(b"x", SALT, 0),
        Err(PasswdProblem::BadIterations)
    );
    assert_eq!(
        PasswordHash::pbkdf2(b"x", &[0; 65], 1),
        Err(PasswdProblem::BadSalt)
    );
}

#[test]
fn a_password_with_a_zero_byte_never_verifies() {
    // HMAC would take "secret\0" for "secret": refused outright.
    let hash = PasswordHash::pbkdf2(b"a\0b", SALT, 2).unwrap();
    assert!(!hash.verify(b"a\0b"));
    assert!(!hash.verify(b"a"));
}

#[test]
fn debug_output_hides_the_hash() {
    let hash = PasswordHash::parse(GOLDEN_7).unwrap();
    let debug = format!("{hash:?}");
    assert!(
        debug.contains("101") && !debug.contains("EO/lLl"),
        "{debug}"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = PasswordFile::parse(&text);
        }

        #[test]
        fn hashes_round_trip_and_verify(
            password in proptest::collection::vec(1u8..=255, 0..40),
            salt in proptest::collection::vec(any::<u8>(), 1..=64),
            iterations in 1u32..4,
        ) {
            let hash = PasswordHash::pbkdf2(&password, &salt, iterations).unwrap();
            let parsed = PasswordHash::parse(&hash.to_string()).unwrap();
            prop_assert!(parsed.verify(&password));
            let mut other = password.clone();
            other.push(b'x');
            prop_assert!(!parsed.verify(&other));
        }
    }
}
