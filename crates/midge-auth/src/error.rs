//! Errors of the two file parsers, each naming the line at fault.

/// What is wrong with one line of a password file (or a hash or user name
/// given to [`PasswordFile`](crate::PasswordFile)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswdProblem {
    /// The line has no `:` between user name and hash.
    #[error("no ':' between user name and hash")]
    NoSeparator,
    /// Empty, or holds `:` or a control character.
    #[error("bad user name (empty, or with ':' or a control character)")]
    BadUserName,
    /// The user is listed twice.
    #[error("user listed twice")]
    DuplicateUser,
    /// The password is not hashed (it does not start with `$`): plain
    /// text passwords are refused.
    #[error("the password is not hashed (plain text is refused; use `midge passwd`)")]
    NotHashed,
    /// A `$<id>$` other than `$6$` and `$7$`.
    #[error("unknown hash format ${0}$ (only $7$ and $6$ are read)")]
    UnknownFormat(String),
    /// The iteration count is not a number from 1 to
    /// [`MAX_ITERATIONS`](crate::MAX_ITERATIONS).
    #[error("bad iteration count (1 to {max})", max = crate::MAX_ITERATIONS)]
    BadIterations,
    /// A field is missing or one too many.
    #[error("wrong number of '$' fields")]
    BadField,
    /// Salt or hash is not standard base64.
    #[error("salt or hash is not base64")]
    BadBase64,
    /// The salt is empty or longer than [`MAX_SALT_LEN`](crate::MAX_SALT_LEN).
    #[error("bad salt length")]
    BadSalt,
    /// The hash is not 64 bytes long.
    #[error("the hash is not 64 bytes long")]
    BadHashLength,
}

/// A password file that cannot be read: the 1-based line and its problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
#[non_exhaustive]
pub struct PasswdError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: PasswdProblem,
}

/// What is wrong with one line of an ACL file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AclProblem {
    /// A first word other than `user`, `topic` and `pattern`.
    #[error("unknown keyword {0:?} (expected user, topic or pattern)")]
    UnknownKeyword(String),
    /// `user` without a name.
    #[error("user without a name")]
    MissingUser,
    /// `topic` or `pattern` without a topic.
    #[error("rule without a topic")]
    MissingTopic,
    /// The topic is not a valid MQTT topic filter.
    #[error("invalid topic filter {0:?}")]
    BadTopic(String),
}

/// An ACL file that cannot be read: the 1-based line and its problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
#[non_exhaustive]
pub struct AclError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: AclProblem,
}
