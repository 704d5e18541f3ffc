//! The `[auth]` table: password file, ACL file and anonymous access, read
//! from disk into a [`midge_auth::FileAuth`] that every router shard shares
//! and that SIGHUP replaces without dropping a connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use midge_auth::{AclFile, FileAuth, PasswordFile};
use midge_broker::Auth;
use midge_codec::ConnectReturnCode;
use serde::Deserialize;

/// Table `[auth]`. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    /// A password file as `midge passwd` or `mosquitto_passwd` writes it.
    #[serde(default)]
    pub(crate) password_file: Option<PathBuf>,
    /// An ACL file in Mosquitto's `acl_file` syntax.
    #[serde(default)]
    pub(crate) acl_file: Option<PathBuf>,
    /// Whether clients may connect without authenticating. Default: false
    /// with a password file, true without.
    #[serde(default)]
    pub(crate) allow_anonymous: Option<bool>,
    /// Allow a password file although a listener is plain TCP on an
    /// address other than loopback (passwords then cross the network in
    /// clear). Default false.
    #[serde(default)]
    pub(crate) allow_insecure_passwords: bool,
}

impl AuthConfig {
    /// Refuses a password file on a plain listener that is not loopback,
    /// unless `allow_insecure_passwords`. All listeners are plain TCP.
    pub(crate) fn check_listeners(&self, listeners: &[SocketAddr]) -> Result<(), String> {
        if self.password_file.is_none() || self.allow_insecure_passwords {
            return Ok(());
        }
        match listeners.iter().find(|addr| !addr.ip().is_loopback()) {
            Some(addr) => Err(format!(
                "[auth] password_file is set but listener {addr} is plain TCP on a non-loopback \
                 address, so passwords would cross the network in clear; listen on loopback, \
                 or set [auth] allow_insecure_passwords = true"
            )),
            None => Ok(()),
        }
    }

    /// Reads both files into a [`FileAuth`].
    pub(crate) fn load(&self) -> Result<FileAuth, String> {
        let passwords = match &self.password_file {
            Some(path) => Some(
                PasswordFile::parse(&read(path, "password_file")?)
                    .map_err(|e| format!("[auth] password_file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let acl = match &self.acl_file {
            Some(path) => Some(
                AclFile::parse(&read(path, "acl_file")?)
                    .map_err(|e| format!("[auth] acl_file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let allow_anonymous = self.allow_anonymous.unwrap_or(passwords.is_none());
        Ok(FileAuth {
            passwords,
            acl,
            allow_anonymous,
        })
    }
}

fn read(path: &Path, key: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("[auth] {key} {}: cannot read: {e}", path.display()))
}

/// Counts of refusals, all shards together.
#[derive(Debug, Default)]
pub(crate) struct Denials {
    /// CONNECTs refused (0x04 or 0x05).
    pub(crate) connects: AtomicU64,
    /// Publications dropped by the ACL (wills included).
    pub(crate) publishes: AtomicU64,
    /// Subscription filters refused with 0x80.
    pub(crate) subscribes: AtomicU64,
}

/// The broker's [`Auth`]: a shared, replaceable [`FileAuth`]. Every shard
/// holds a clone; [`SharedAuth::replace`] swaps the rules for all of them
/// at once, and the next CONNECT, PUBLISH or SUBSCRIBE sees the new ones.
/// The lock is only ever held for one check, never across an `.await`.
#[derive(Debug, Clone)]
pub(crate) struct SharedAuth {
    current: Arc<RwLock<Arc<FileAuth>>>,
    denials: Arc<Denials>,
}

impl SharedAuth {
    pub(crate) fn new(auth: FileAuth) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(auth))),
            denials: Arc::new(Denials::default()),
        }
    }

    /// Installs new rules for every shard.
    pub(crate) fn replace(&self, auth: FileAuth) {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *guard = Arc::new(auth);
    }

    /// The refusal counters.
    pub(crate) fn denials(&self) -> &Denials {
        &self.denials
    }

    fn rules(&self) -> Arc<FileAuth> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Auth for SharedAuth {
    fn connect(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        // The Arc is cloned so a reload never waits for a password hash.
        let verdict = self.rules().check_connect(username, password);
        if let Err(code) = verdict {
            self.denials.connects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(client_id, username, ?code, "connection refused by [auth]");
        }
        verdict
    }

    fn may_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        let allowed = self.rules().check_publish(client_id, username, topic);
        if !allowed {
            let total = self.denials.publishes.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                client_id,
                username,
                topic,
                denied_publishes = total,
                "publish denied by the ACL, dropped"
            );
        }
        allowed
    }

    fn may_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        let allowed = self.rules().check_subscribe(client_id, username, filter);
        if !allowed {
            let total = self.denials.subscribes.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                client_id,
                username,
                filter,
                denied_subscribes = total,
                "subscription denied by the ACL (0x80)"
            );
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(password_file: bool, insecure: bool) -> AuthConfig {
        AuthConfig {
            password_file: password_file.then(|| PathBuf::from("p")),
            allow_insecure_passwords: insecure,
            ..AuthConfig::default()
        }
    }

    #[test]
    fn password_files_need_loopback_or_an_explicit_allowance() {
        let public: SocketAddr = "0.0.0.0:1883".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:1883".parse().unwrap();
        let local6: SocketAddr = "[::1]:1883".parse().unwrap();
        assert!(config(true, false)
            .check_listeners(&[local, local6])
            .is_ok());
        assert!(config(true, false)
            .check_listeners(&[local, public])
            .is_err());
        assert!(config(true, true).check_listeners(&[public]).is_ok());
        assert!(config(false, false).check_listeners(&[public]).is_ok());
    }

    #[test]
    fn anonymous_access_defaults_follow_the_password_file() {
        let none = AuthConfig::default().load().unwrap();
        assert!(none.allow_anonymous && none.passwords.is_none() && none.acl.is_none());
        let missing = config(true, false).load().unwrap_err();
        assert!(
            missing.contains("password_file p: cannot read"),
            "{missing}"
        );
    }

    #[test]
    fn replace_applies_to_every_clone() {
        let shared = SharedAuth::new(FileAuth {
            passwords: None,
            acl: None,
            allow_anonymous: true,
        });
        let mut shard = shared.clone();
        assert_eq!(shard.connect("c", None, None), Ok(()));
        shared.replace(FileAuth {
            passwords: None,
            acl: Some(AclFile::parse("topic read a\n").unwrap()),
            allow_anonymous: false,
        });
        assert_eq!(
            shard.connect("c", None, None),
            Err(ConnectReturnCode::NotAuthorized)
        );
        assert!(!shard.may_publish("c", None, "a"));
        assert!(shard.may_subscribe("c", None, "a"));
        assert_eq!(shared.denials().connects.load(Ordering::Relaxed), 1);
        assert_eq!(shared.denials().publishes.load(Ordering::Relaxed), 1);
    }
}
