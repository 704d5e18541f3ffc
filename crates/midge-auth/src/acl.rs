//! ACL files in the syntax of Mosquitto's `acl_file`, and their evaluation.

use std::collections::BTreeMap;

use midge_topic::{matches_str, validate_topic_filter, SubscriptionFilter};

use crate::error::{AclError, AclProblem};

/// What a rule allows (or, for `Deny`, forbids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe (receive).
    Read,
    /// Publish (send).
    Write,
    /// Both; the default when a rule names no access.
    ReadWrite,
    /// Neither, whatever other rules say: a matching `deny` rule wins.
    Deny,
}

impl Access {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "readwrite" => Some(Self::ReadWrite),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }

    fn grants(self, op: Op) -> bool {
        matches!(
            (self, op),
            (Self::Read | Self::ReadWrite, Op::Subscribe)
                | (Self::Write | Self::ReadWrite, Op::Publish)
        )
    }
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What it allows or forbids.
    pub access: Access,
    /// The topic filter (for a pattern, before `%c`/`%u` substitution).
    pub filter: String,
}

/// The operation being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Publish,
    Subscribe,
}

/// A parsed ACL file.
///
/// - `topic` lines before the first `user` line apply to clients that
///   connected without a user name;
/// - `topic` lines after `user NAME` apply to that user (several blocks of
///   one user add up);
/// - `pattern` lines apply to every client, wherever they stand, with `%c`
///   replaced by the client id and `%u` by the user name.
///
/// A client may do what some rule of its own grants, unless a matching
/// `deny` rule forbids it; with no matching rule it may not. See
/// [`AclFile::may_publish`] and [`AclFile::may_subscribe`] for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: BTreeMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl AclFile {
    /// Parses a whole file. Leading and trailing white space of each line
    /// is ignored, as are blank lines and lines whose first non-blank
    /// character is `#`.
    ///
    /// # Errors
    /// The first bad line: an unknown keyword, `user` without a name, a
    /// rule without a topic, or an invalid topic filter.
    pub fn parse(text: &str) -> Result<Self, AclError> {
        let mut acl = Self::default();
        let mut current: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |problem| AclError {
                line: index.saturating_add(1),
                problem,
            };
            let (keyword, rest) = split_word(line);
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(at(AclProblem::MissingUser));
                    }
                    current = Some(rest.to_string());
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(at)?;
                    if keyword == "pattern" {
                        acl.patterns.push(rule);
                    } else if let Some(user) = &current {
                        acl.users.entry(user.clone()).or_default().push(rule);
                    } else {
                        acl.anonymous.push(rule);
                    }
                }
                other => {
                    return Err(at(AclProblem::UnknownKeyword(
                        other.chars().take(32).collect(),
                    )))
                }
            }
        }
        Ok(acl)
    }

    /// The rules for clients without a user name.
    #[must_use]
    pub fn anonymous_rules(&self) -> &[Rule] {
        &self.anonymous
    }

    /// The rules of `user` (empty if the file names no such user).
    #[must_use]
    pub fn user_rules(&self, user: &str) -> &[Rule] {
        self.users.get(user).map_or(&[], Vec::as_slice)
    }

    /// The patterns, for every client.
    #[must_use]
    pub fn patterns(&self) -> &[Rule] {
        &self.patterns
    }

    /// Whether the client may publish to `topic`: some `write` or
    /// `readwrite` rule of its own matches the topic (matched with
    /// `midge-topic`, so `$` topics escape leading wildcards
    /// [MQTT-4.7.2-1]) and no `deny` rule does.
    #[must_use]
    pub fn may_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        let hit = |rule: &str| matches_str(rule, topic);
        self.decide(client_id, username, Op::Publish, hit, hit)
    }

    /// Whether the client may subscribe to `filter` (for a shared
    /// subscription `$share/group/f`, the filter `f`): some `read` or
    /// `readwrite` rule of its own covers every topic the filter can match
    /// (`a/#` covers `a/+/b`; `a/+` does not cover `a/#`), and no `deny`
    /// rule matches any topic the filter can match.
    #[must_use]
    pub fn may_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        let Ok(parsed) = SubscriptionFilter::parse(filter) else {
            return false;
        };
        let inner = parsed.topic_filter().as_str();
        self.decide(
            client_id,
            username,
            Op::Subscribe,
            |rule| covers(rule, inner),
            |rule| overlaps(rule, inner),
        )
    }

    /// Granted when a rule allowing `op` satisfies `grant`, unless a `deny`
    /// rule satisfies `deny` (or is an unsafe pattern).
    fn decide(
        &self,
        client_id: &str,
        username: Option<&str>,
        op: Op,
        grant: impl Fn(&str) -> bool,
        deny: impl Fn(&str) -> bool,
    ) -> bool {
        let mut granted = false;
        let mut denied = false;
        self.for_each_rule(client_id, username, |access, filter| {
            if access == Access::Deny {
                denied |= filter.is_none_or(&deny);
            } else if access.grants(op) && filter.is_some_and(&grant) {
                granted = true;
            }
        });
        granted && !denied
    }

    /// Calls `f` with every rule that concerns the client: its own topic
    /// rules, then the patterns after substitution. A pattern whose
    /// substitution is unsafe (the value holds `+`, `#` or `/`, or the
    /// result is not a valid filter) is passed as `None`: it grants
    /// nothing, and a `deny` one forbids everything (fail closed). A
    /// pattern with `%u` does not concern a client without a user name.
    fn for_each_rule(
        &self,
        client_id: &str,
        username: Option<&str>,
        mut f: impl FnMut(Access, Option<&str>),
    ) {
        let own = match username {
            Some(user) => self.user_rules(user),
            None => &self.anonymous,
        };
        for rule in own {
            f(rule.access, Some(&rule.filter));
        }
        for rule in &self.patterns {
            if rule.filter.contains("%u") && username.is_none() {
                continue;
            }
            match substitute(&rule.filter, client_id, username) {
                Some(filter) => f(rule.access, Some(&filter)),
                None => f(rule.access, None),
            }
        }
    }
}

/// Replaces `%c` and `%u`; `None` when a value would bring wildcards or
/// levels of its own, or the result is not a valid filter.
fn substitute(pattern: &str, client_id: &str, username: Option<&str>) -> Option<String> {
    let unsafe_value = |v: &str| v.contains(['+', '#', '/']);
    let mut out = pattern.to_string();
    if out.contains("%c") {
        if unsafe_value(client_id) {
            return None;
        }
        out = out.replace("%c", client_id);
    }
    if pattern.contains("%u") {
        let user = username?;
        if unsafe_value(user) {
            return None;
        }
        out = out.replace("%u", user);
    }
    validate_topic_filter(&out).ok()?;
    Some(out)
}

/// Splits off the first white-space-delimited word; the rest is trimmed.
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (s, ""),
    }
}

fn parse_rule(rest: &str) -> Result<Rule, AclProblem> {
    let (first, after) = split_word(rest);
    let (access, filter) = match Access::parse(first) {
        Some(access) => (access, after),
        None => (Access::ReadWrite, rest),
    };
    if filter.is_empty() {
        return Err(AclProblem::MissingTopic);
    }
    validate_topic_filter(filter)
        .map_err(|_| AclProblem::BadTopic(filter.chars().take(64).collect()))?;
    Ok(Rule {
        access,
        filter: filter.to_string(),
    })
}

/// Whether the first level of a filter is a wildcard.
fn starts_wild(filter: &str) -> bool {
    matches!(filter.split('/').next(), Some("+" | "#"))
}

/// Whether the first level is a literal starting with `$`.
fn starts_dollar(filter: &str) -> bool {
    filter.starts_with('$')
}

/// Whether every topic `sub` can match is matched by `rule` (both valid
/// filters). The `$` rule holds: a rule starting with a wildcard covers
/// no filter of `$` topics [MQTT-4.7.2-1].
#[must_use]
pub fn covers(rule: &str, sub: &str) -> bool {
    if starts_wild(rule) && starts_dollar(sub) {
        return false;
    }
    let mut r = rule.split('/');
    let mut s = sub.split('/');
    loop {
        match (r.next(), s.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(a), Some(b)) if a == b && a != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic is matched by both filters (both valid), the `$`
/// rule included [MQTT-4.7.2-1].
#[must_use]
pub fn overlaps(a: &str, b: &str) -> bool {
    if (starts_wild(a) && starts_dollar(b)) || (starts_wild(b) && starts_dollar(a)) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some(p), Some(q)) if p == "+" || q == "+" || p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}
