//! Password files in the format of Mosquitto's `mosquitto_passwd`: one
//! `user:hash` line per user, the hash salted and slow.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha512};
use subtle::ConstantTimeEq as _;

use crate::error::{PasswdError, PasswdProblem};

/// PBKDF2 iterations for new entries (see the crate README for the
/// reasoning: cost of one CONNECT against cost of a guess).
pub const DEFAULT_ITERATIONS: u32 = 10_000;

/// The most PBKDF2 iterations a file may ask for. A line above it is
/// refused when the file is read, so a careless or hostile file cannot
/// make each CONNECT take seconds.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Salt length of new entries, in bytes (Mosquitto's too).
pub const SALT_LEN: usize = 12;

/// The longest salt a file may carry, in bytes.
pub const MAX_SALT_LEN: usize = 64;

/// Length of a SHA-512 output, the derived key length of both formats.
const HASH_LEN: usize = 64;

/// One user's stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 (Mosquitto 2).
    Pbkdf2Sha512 {
        /// PBKDF2 iteration count, 1 to [`MAX_ITERATIONS`].
        iterations: u32,
        /// The salt, 1 to [`MAX_SALT_LEN`] bytes.
        salt: Vec<u8>,
        /// The 64-byte derived key.
        hash: [u8; HASH_LEN],
    },
    /// `$6$<salt>$<hash>`: one round of SHA-512 over password then salt
    /// (Mosquitto 1.x). Read so old files carry over; fast to brute
    /// force, so never written: `midge passwd` replaces it on update.
    Sha512 {
        /// The salt, 1 to [`MAX_SALT_LEN`] bytes.
        salt: Vec<u8>,
        /// The 64-byte digest.
        hash: [u8; HASH_LEN],
    },
}

impl fmt::Debug for PasswordHash {
    // The hash itself stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pbkdf2Sha512 { iterations, .. } => f
                .debug_struct("Pbkdf2Sha512")
                .field("iterations", iterations)
                .finish_non_exhaustive(),
            Self::Sha512 { .. } => f.debug_struct("Sha512").finish_non_exhaustive(),
        }
    }
}

impl PasswordHash {
    /// Derives a PBKDF2-HMAC-SHA512 hash of `password` with the caller's
    /// `salt` (take it from the OS, [`SALT_LEN`] bytes) and `iterations`.
    ///
    /// # Errors
    /// An empty salt or one over [`MAX_SALT_LEN`] bytes, or `iterations`
    /// of 0 or over [`MAX_ITERATIONS`].
    pub fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> Result<Self, PasswdProblem> {
        check_salt(salt)?;
        check_iterations(iterations)?;
        let mut hash = [0u8; HASH_LEN];
        pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut hash);
        Ok(Self::Pbkdf2Sha512 {
            iterations,
            salt: salt.to_vec(),
            hash,
        })
    }

    /// Whether `password` hashes to this entry, compared in constant time.
    ///
    /// A password holding a zero byte never verifies: HMAC pads its key
    /// with zeros, so `"pw"` and `"pw\0"` would derive the same hash, and
    /// Mosquitto's tools cannot store such a password anyway.
    #[must_use]
    pub fn verify(&self, password: &[u8]) -> bool {
        let mut out = [0u8; HASH_LEN];
        let expected = match self {
            Self::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                hash
            }
            Self::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                out.copy_from_slice(&digest.finalize());
                hash
            }
        };
        bool::from(out.ct_eq(expected)) && !password.contains(&0)
    }

    /// Parses the part of a line after `user:`.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Self, PasswdProblem> {
        let mut parts = text.split('$');
        if parts.next() != Some("") {
            return Err(PasswdProblem::NotHashed);
        }
        match parts.next() {
            Some("7") => {
                let iterations = parts
                    .next()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or(PasswdProblem::BadIterations)?;
                check_iterations(iterations)?;
                let salt = decode(parts.next())?;
                check_salt(&salt)?;
                let hash = decode_hash(parts.next())?;
                if parts.next().is_some() {
                    return Err(PasswdProblem::BadField);
                }
                Ok(Self::Pbkdf2Sha512 {
                    iterations,
                    salt,
                    hash,
                })
            }
            Some("6") => {
                let salt = decode(parts.next())?;
                check_salt(&salt)?;
                let hash = decode_hash(parts.next())?;
                if parts.next().is_some() {
                    return Err(PasswdProblem::BadField);
                }
                Ok(Self::Sha512 { salt, hash })
            }
            Some(other) => Err(PasswdProblem::UnknownFormat(
                other.chars().take(8).collect(),
            )),
            None => Err(PasswdProblem::NotHashed),
        }
    }
}

impl fmt::Display for PasswordHash {
    /// The hash as it is written after `user:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                STANDARD.encode(salt),
                STANDARD.encode(hash)
            ),
            Self::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", STANDARD.encode(salt), STANDARD.encode(hash))
            }
        }
    }
}

fn check_iterations(iterations: u32) -> Result<(), PasswdProblem> {
    if (1..=MAX_ITERATIONS).contains(&iterations) {
        Ok(())
    } else {
        Err(PasswdProblem::BadIterations)
    }
}

fn check_salt(salt: &[u8]) -> Result<(), PasswdProblem> {
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        Err(PasswdProblem::BadSalt)
    } else {
        Ok(())
    }
}

fn decode(field: Option<&str>) -> Result<Vec<u8>, PasswdProblem> {
    let field = field.ok_or(PasswdProblem::BadField)?;
    STANDARD
        .decode(field.trim())
        .map_err(|_| PasswdProblem::BadBase64)
}

fn decode_hash(field: Option<&str>) -> Result<[u8; HASH_LEN], PasswdProblem> {
    let bytes = decode(field)?;
    <[u8; HASH_LEN]>::try_from(bytes.as_slice()).map_err(|_| PasswdProblem::BadHashLength)
}

/// Checks a user name for a password file: not empty, no `:` (it ends the
/// name), no control characters (a line break would forge a line).
///
/// # Errors
/// [`PasswdProblem::BadUserName`].
pub fn check_user_name(user: &str) -> Result<(), PasswdProblem> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        Err(PasswdProblem::BadUserName)
    } else {
        Ok(())
    }
}

/// A password file: user names and their hashes, in file order.
///
/// Parsed from text with [`PasswordFile::parse`], written back with its
/// `Display` (one `user:hash` line each, comments not kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    entries: BTreeMap<String, (usize, PasswordHash)>,
    next: usize,
    /// A hash verified for unknown users, so that a wrong user name costs
    /// as much time as a wrong password.
    decoy: Option<PasswordHash>,
}

impl PasswordFile {
    /// An empty file.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a whole file. Blank lines and lines starting with `#` are
    /// skipped; a line with a carriage return at its end is taken without it.
    ///
    /// # Errors
    /// The first bad line: no `:`, a bad user name, a repeated user, or a
    /// hash that is not one of the two formats (plain text included).
    pub fn parse(text: &str) -> Result<Self, PasswdError> {
        let mut file = Self::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index.saturating_add(1);
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |problem| PasswdError {
                line: line_no,
                problem,
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| at(PasswdProblem::NoSeparator))?;
            check_user_name(user).map_err(at)?;
            let hash = PasswordHash::parse(hash).map_err(at)?;
            if file.entries.contains_key(user) {
                return Err(at(PasswdProblem::DuplicateUser));
            }
            file.set(user, hash).map_err(at)?;
        }
        Ok(file)
    }

    /// Adds or replaces `user`'s hash (a replaced user keeps its place).
    ///
    /// # Errors
    /// A user name [`check_user_name`] refuses.
    pub fn set(&mut self, user: &str, hash: PasswordHash) -> Result<(), PasswdProblem> {
        check_user_name(user)?;
        if self.decoy.is_none() {
            if let PasswordHash::Pbkdf2Sha512 { iterations, .. } = &hash {
                self.decoy = PasswordHash::pbkdf2(b"", b"midge-decoy", *iterations).ok();
            }
        }
        let order = match self.entries.get(user) {
            Some((order, _)) => *order,
            None => {
                self.next = self.next.saturating_add(1);
                self.next
            }
        };
        self.entries.insert(user.to_string(), (order, hash));
        Ok(())
    }

    /// Removes `user`; whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        self.entries.remove(user).is_some()
    }

    /// `user`'s hash, if listed.
    #[must_use]
    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.entries.get(user).map(|(_, hash)| hash)
    }

    /// Number of users.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no user is listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user names, in file order.
    #[must_use]
    pub fn users(&self) -> Vec<&str> {
        let mut users: Vec<(usize, &str)> = self
            .entries
            .iter()
            .map(|(user, (order, _))| (*order, user.as_str()))
            .collect();
        users.sort_unstable();
        users.into_iter().map(|(_, user)| user).collect()
    }

    /// Whether `user` is listed with a hash of `password`. An unknown user
    /// costs one hash too (against a decoy), so the answer's timing does
    /// not tell which user names exist.
    #[must_use]
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = decoy.verify(password);
                }
                false
            }
        }
    }
}

impl fmt::Display for PasswordFile {
    /// The file as `midge passwd` writes it: `user:hash` lines in file order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for user in self.users() {
            if let Some(hash) = self.get(user) {
                writeln!(f, "{user}:{hash}")?;
            }
        }
        Ok(())
    }
}
