//! Passwords and access control for the Midge broker: Mosquitto-compatible
//! password files and ACL files, parsed from text and checked in memory,
//! behind the broker's [`midge_broker::Auth`] hook.
//!
//! What it does:
//! - reads password files as `mosquitto_passwd` writes them (`user:$7$…`,
//!   PBKDF2-HMAC-SHA512, and the older `$6$` salted SHA-512), hashes new
//!   entries ([`PasswordHash::pbkdf2`], [`DEFAULT_ITERATIONS`]) and writes
//!   the file back ([`PasswordFile`]'s `Display`); verifies in constant
//!   time, and spends one hash on unknown users too;
//! - reads ACL files in Mosquitto's `acl_file` syntax (`user`, `topic`,
//!   `pattern` with `%c`/`%u`, `read`/`write`/`readwrite`/`deny`) and
//!   decides publish and subscribe requests ([`AclFile`]), matching topics
//!   with `midge-topic`;
//! - combines both as [`FileAuth`], the broker's [`Auth`]: CONNACK 0x04 for
//!   a bad user name or password, 0x05 for an anonymous client where
//!   anonymous access is off.
//!
//! What it deliberately does not do: any I/O. It reads no files, no clock
//! and no randomness: callers hand it text and salts (the `midge` and
//! `midged` binaries read the files and the OS random source), so it is
//! checked as a sans-IO crate. It keeps no plain-text password.
//!
//! Will messages are not seen at CONNECT (the broker's hook does not carry
//! them): a will is checked like any publish when the broker publishes it,
//! and dropped (and counted as a denied publish) if its topic is not
//! writable for the client; the CONNECT itself is accepted, as Mosquitto
//! 2.0 does.
//!
//! Key types: [`FileAuth`], [`PasswordFile`], [`PasswordHash`],
//! [`AclFile`], [`Access`], [`PasswdError`], [`AclError`].
#![forbid(unsafe_code)]

mod acl;
mod error;
mod passwd;

use midge_broker::Auth;
use midge_codec::ConnectReturnCode;

pub use acl::{covers, overlaps, Access, AclFile, Rule};
pub use error::{AclError, AclProblem, PasswdError, PasswdProblem};
pub use passwd::{
    check_user_name, PasswordFile, PasswordHash, DEFAULT_ITERATIONS, MAX_ITERATIONS, MAX_SALT_LEN,
    SALT_LEN,
};

/// Password file, ACL file and the anonymous switch, as one
/// [`Auth`] for the broker's router.
///
/// - CONNECT without a user name: accepted if `allow_anonymous`, else
///   refused with 0x05 (not authorised).
/// - CONNECT with a user name, with a password file: accepted if the user
///   is listed and the password verifies, else refused with 0x04 (bad
///   user name or password), a missing password included.
/// - CONNECT with a user name, without a password file: the name is not
///   checked, so the client counts as anonymous for `allow_anonymous`
///   (its name still selects its ACL rules).
/// - PUBLISH and SUBSCRIBE: all allowed without an ACL file, else as
///   [`AclFile::may_publish`] and [`AclFile::may_subscribe`] say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAuth {
    /// The password file, if one is configured.
    pub passwords: Option<PasswordFile>,
    /// The ACL file, if one is configured.
    pub acl: Option<AclFile>,
    /// Whether clients that do not authenticate with a password file may
    /// connect.
    pub allow_anonymous: bool,
}

impl FileAuth {
    /// Checks a CONNECT (see the type's documentation).
    ///
    /// # Errors
    /// `BadUsernameOrPassword` (0x04) or `NotAuthorized` (0x05).
    pub fn check_connect(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        match (&self.passwords, username) {
            (Some(file), Some(user)) => match password {
                Some(password) if file.verify(user, password) => Ok(()),
                Some(_) => Err(ConnectReturnCode::BadUsernameOrPassword),
                None => {
                    // Spend the same time as a wrong password.
                    let _ = file.verify(user, b"");
                    Err(ConnectReturnCode::BadUsernameOrPassword)
                }
            },
            _ if self.allow_anonymous => Ok(()),
            _ => Err(ConnectReturnCode::NotAuthorized),
        }
    }

    /// Whether the client may publish to `topic`.
    #[must_use]
    pub fn check_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.acl
            .as_ref()
            .is_none_or(|acl| acl.may_publish(client_id, username, topic))
    }

    /// Whether the client may subscribe to `filter`.
    #[must_use]
    pub fn check_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        self.acl
            .as_ref()
            .is_none_or(|acl| acl.may_subscribe(client_id, username, filter))
    }
}

impl Auth for FileAuth {
    fn connect(
        &mut self,
        _client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        self.check_connect(username, password)
    }

    /// A verified client certificate names the user: no password is
    /// checked, as Mosquitto's `use_identity_as_username` does; the ACL
    /// still applies to that name.
    fn connect_certified(
        &mut self,
        _client_id: &str,
        _username: &str,
    ) -> Result<(), ConnectReturnCode> {
        Ok(())
    }

    fn may_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.check_publish(client_id, username, topic)
    }

    fn may_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        self.check_subscribe(client_id, username, filter)
    }
}
