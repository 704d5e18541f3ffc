//! A user name from a verified client certificate goes to
//! `Auth::connect_certified`, never to the password check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use midge_broker::router::{Action, Auth, ConnId, ConnectRequest, MemoryStore, Router};
use midge_broker::RouterConfig;
use midge_codec::{ConnectReturnCode, MqttString};
use midge_time::Instant;

/// Passwords: only "alice" with "pw". Certificates: only "alice".
struct Strict;

impl Auth for Strict {
    fn connect(
        &mut self,
        _client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        match (username, password) {
            (Some("alice"), Some(b"pw")) => Ok(()),
            _ => Err(ConnectReturnCode::BadUsernameOrPassword),
        }
    }

    fn connect_certified(
        &mut self,
        _client_id: &str,
        username: &str,
    ) -> Result<(), ConnectReturnCode> {
        if username == "alice" {
            Ok(())
        } else {
            Err(ConnectReturnCode::NotAuthorized)
        }
    }

    fn may_publish(&self, _: &str, _: Option<&str>, _: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _: &str, _: Option<&str>, _: &str) -> bool {
        true
    }
}

/// Passwords only; keeps the default `connect_certified`.
struct PasswordsOnly;

impl Auth for PasswordsOnly {
    fn connect(
        &mut self,
        _client_id: &str,
        _username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        match password {
            Some(b"pw") => Ok(()),
            _ => Err(ConnectReturnCode::BadUsernameOrPassword),
        }
    }

    fn may_publish(&self, _: &str, _: Option<&str>, _: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _: &str, _: Option<&str>, _: &str) -> bool {
        true
    }
}

fn request(user: &str, password: Option<&'static [u8]>, certified: bool) -> ConnectRequest {
    let mut request = ConnectRequest::new(MqttString::new("c1").unwrap(), true);
    request.username = Some(MqttString::new(user).unwrap());
    request.password = password.map(Bytes::from_static);
    request.username_from_certificate = certified;
    request
}

fn verdict<A: Auth>(auth: A, request: ConnectRequest) -> Option<ConnectReturnCode> {
    let mut router = Router::new(RouterConfig::default(), MemoryStore::new(), auth);
    router.handle_connect(Instant::from_secs(1), ConnId(1), request);
    match router.poll_action() {
        Some(Action::Accept { .. }) => None,
        Some(Action::Refuse { code, .. }) => Some(code),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn certified_user_name_needs_no_password() {
    assert_eq!(verdict(Strict, request("alice", None, true)), None);
    // The same name typed into CONNECT without the password is refused.
    assert_eq!(
        verdict(Strict, request("alice", None, false)),
        Some(ConnectReturnCode::BadUsernameOrPassword)
    );
    // A certificate for a name the hook does not accept.
    assert_eq!(
        verdict(Strict, request("mallory", Some(b"pw"), true)),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

#[test]
fn default_certified_hook_still_asks_for_the_password() {
    // An Auth that knows nothing of certificates keeps its password rule.
    assert_eq!(
        verdict(PasswordsOnly, request("alice", Some(b"pw"), true)),
        Some(ConnectReturnCode::BadUsernameOrPassword)
    );
    assert_eq!(
        verdict(PasswordsOnly, request("alice", Some(b"pw"), false)),
        None
    );
}
