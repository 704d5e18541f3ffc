//! `cargo xtask conformance [--check]`: the MQTT 3.1.1 normative-statement matrix.
//!
//! `docs/statements.tsv` lists every normative statement (`ID<TAB>owner<TAB>summary`,
//! summaries in our own words). Tests claim statements by name
//! (`fn mqtt_3_1_2_24_…` claims `MQTT-3.1.2-24`) or by a `// covers: MQTT-x.y.z-n`
//! line directly above the `fn` (attributes and other comments may sit between).
//! The result is rendered into `docs/conformance.md`; `--check` fails when that file
//! is stale. A test that names a statement missing from the list is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const STATEMENTS: &str = "docs/statements.tsv";
const MATRIX: &str = "docs/conformance.md";
/// The spec pack next to the repository, when a developer has it.
const SPEC_LIST: &str = "../shared/spec/mqtt-3.1.1-normative.tsv";

/// One line of `docs/statements.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) summary: String,
}

/// A test that claims a statement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Coverage {
    /// The crate folder name under `crates/`.
    pub(crate) krate: String,
    /// The source file, relative to the repository root, with `/` separators.
    pub(crate) path: String,
    pub(crate) test: String,
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask conformance [--check]"),
    };
    let tsv_path = root.join(STATEMENTS);
    let tsv = std::fs::read_to_string(&tsv_path)
        .with_context(|| format!("reading {}", tsv_path.display()))?;
    let statements = parse_statements(&tsv)?;

    check_against_spec(root, &statements)?;

    let claims = scan_tree(root)?;
    let coverage = attach(&statements, claims)?;
    let rendered = render(&statements, &coverage);
    let covered = coverage.values().filter(|tests| !tests.is_empty()).count();

    let matrix_path = root.join(MATRIX);
    if check {
        let current = std::fs::read_to_string(&matrix_path).unwrap_or_default();
        if current != rendered {
            bail!("{MATRIX} is out of date with the tests and {STATEMENTS}: run `cargo xtask conformance` and commit the result");
        }
        println!(
            "conformance: {MATRIX} is current ({covered} of {} statements covered)",
            statements.len()
        );
    } else {
        std::fs::write(&matrix_path, &rendered)
            .with_context(|| format!("writing {}", matrix_path.display()))?;
        println!(
            "conformance: wrote {MATRIX} ({covered} of {} statements covered)",
            statements.len()
        );
    }
    Ok(())
}

/// Whether `id` looks like `MQTT-<n>.<n>.<n>-<n>`.
pub(crate) fn is_statement_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("MQTT-") else {
        return false;
    };
    let Some((section, number)) = rest.split_once('-') else {
        return false;
    };
    let parts: Vec<&str> = section.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3 && parts.iter().all(|p| numeric(p)) && numeric(number)
}

/// Parses `docs/statements.tsv`: three tab-separated columns, no header, unique ids.
pub(crate) fn parse_statements(text: &str) -> Result<Vec<Statement>> {
    let mut statements = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let columns: Vec<&str> = line.split('\t').collect();
        let [id, owner, summary] = columns.as_slice() else {
            bail!(
                "{STATEMENTS}:{line_no}: expected 3 tab-separated columns (id, owner, summary), found {}",
                columns.len()
            );
        };
        let (id, owner, summary) = (id.trim(), owner.trim(), summary.trim());
        if !is_statement_id(id) {
            bail!("{STATEMENTS}:{line_no}: `{id}` is not a statement id like MQTT-3.1.2-24");
        }
        if !owner.starts_with("midge-") {
            bail!("{STATEMENTS}:{line_no}: owner `{owner}` is not a midge-* crate");
        }
        if summary.is_empty() {
            bail!("{STATEMENTS}:{line_no}: empty summary for {id}");
        }
        if !seen.insert(id.to_owned()) {
            bail!("{STATEMENTS}:{line_no}: duplicate statement {id}");
        }
        statements.push(Statement {
            id: id.to_owned(),
            owner: owner.to_owned(),
            summary: summary.to_owned(),
        });
    }
    Ok(statements)
}

/// The statement a test name claims: `mqtt_4_7_2_1_rest` -> `MQTT-4.7.2-1`.
/// Exactly the first four groups after `mqtt_` must be numbers.
pub(crate) fn id_from_fn_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("mqtt_")?;
    let mut parts = rest.split('_');
    let mut numbers = [""; 4];
    for slot in &mut numbers {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part;
    }
    let [a, b, c, n] = numbers;
    Some(format!("MQTT-{a}.{b}.{c}-{n}"))
}

/// The name of the function a source line declares, if any (`fn name` anywhere
/// on a non-comment line, after modifiers or an attribute).
pub(crate) fn fn_name_on_line(line: &str) -> Option<&str> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return None;
    }
    let mut rest = code;
    loop {
        let at = rest.find("fn ")?;
        let before_ok = rest
            .get(..at)
            .and_then(|b| b.chars().next_back())
            .is_none_or(|c| c.is_whitespace() || c == ']' || c == '{');
        let after = rest.get(at + 3..)?.trim_start();
        if before_ok {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = after.get(..end)?;
            if !name.is_empty() {
                return Some(name);
            }
        }
        rest = rest.get(at + 3..)?;
    }
}

/// The statements a `// covers: MQTT-a, MQTT-b` comment names (None if the line
/// is not such a comment).
pub(crate) fn covers_comment(line: &str) -> Option<Vec<String>> {
    let comment = line.trim_start().strip_prefix("//")?;
    let list = comment
        .trim_start_matches(['/', '!'])
        .trim_start()
        .strip_prefix("covers:")?;
    Some(
        list.split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// A statement id claimed by a function in a file: (id, function name).
pub(crate) type Claim = (String, String);

/// Every claim in one Rust source file.
pub(crate) fn scan_source(text: &str) -> Vec<Claim> {
    let mut claims = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(ids) = covers_comment(trimmed) {
            pending.extend(ids);
            continue;
        }
        if let Some(name) = fn_name_on_line(trimmed) {
            for id in pending.drain(..) {
                claims.push((id, name.to_owned()));
            }
            if let Some(id) = id_from_fn_name(name) {
                claims.push((id, name.to_owned()));
            }
            continue;
        }
        // Attributes, doc comments and blank lines may sit between the covers
        // line and its fn; anything else ends the claim.
        let keeps_pending =
            trimmed.is_empty() || trimmed.starts_with("#[") || trimmed.starts_with("//");
        if !keeps_pending {
            pending.clear();
        }
    }
    claims
}

/// Scans every `.rs` file under `crates/`, skipping build output.
fn scan_tree(root: &Path) -> Result<Vec<(Coverage, String)>> {
    let crates_dir = root.join("crates");
    let mut files = Vec::new();
    if crates_dir.is_dir() {
        collect_rs_files(&crates_dir, &mut files)?;
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let relative = file.strip_prefix(root).unwrap_or(&file);
        let path = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let krate = relative
            .components()
            .nth(1)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        for (id, test) in scan_source(&text) {
            out.push((
                Coverage {
                    krate: krate.clone(),
                    path: path.clone(),
                    test,
                },
                id,
            ));
        }
    }
    Ok(out)
}

fn collect_rs_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_rs_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// Groups claims by statement; a claim for an unknown statement is an error.
pub(crate) fn attach(
    statements: &[Statement],
    claims: Vec<(Coverage, String)>,
) -> Result<BTreeMap<String, BTreeSet<Coverage>>> {
    let mut by_id: BTreeMap<String, BTreeSet<Coverage>> = statements
        .iter()
        .map(|s| (s.id.clone(), BTreeSet::new()))
        .collect();
    let mut unknown = Vec::new();
    for (coverage, id) in claims {
        match by_id.get_mut(&id) {
            Some(tests) => {
                tests.insert(coverage);
            }
            None => unknown.push(format!("  {}::{} names {id}", coverage.path, coverage.test)),
        }
    }
    if !unknown.is_empty() {
        bail!(
            "tests name statements that are not in {STATEMENTS} (typo?):\n{}",
            unknown.join("\n")
        );
    }
    Ok(by_id)
}

/// Compares our statement ids with the spec pack's, when it is present.
fn check_against_spec(root: &Path, statements: &[Statement]) -> Result<()> {
    let spec_path = root.join(SPEC_LIST);
    let Ok(spec) = std::fs::read_to_string(&spec_path) else {
        println!("skipping statement-list completeness check: ../shared/spec not found");
        return Ok(());
    };
    let spec_ids: BTreeSet<&str> = spec
        .lines()
        .filter_map(|line| line.split('\t').next())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect();
    let ours: BTreeSet<&str> = statements.iter().map(|s| s.id.as_str()).collect();
    let missing: Vec<&str> = spec_ids.difference(&ours).copied().collect();
    let extra: Vec<&str> = ours.difference(&spec_ids).copied().collect();
    if missing.is_empty() && extra.is_empty() {
        println!(
            "conformance: {STATEMENTS} lists the same {} statements as the spec",
            ours.len()
        );
        return Ok(());
    }
    bail!(
        "{STATEMENTS} does not match the spec's statement list\n  missing: {}\n  extra: {}",
        if missing.is_empty() {
            "-".to_owned()
        } else {
            missing.join(", ")
        },
        if extra.is_empty() {
            "-".to_owned()
        } else {
            extra.join(", ")
        }
    )
}

/// Makes text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Renders `docs/conformance.md`.
pub(crate) fn render(
    statements: &[Statement],
    coverage: &BTreeMap<String, BTreeSet<Coverage>>,
) -> String {
    let tests_for = |id: &str| coverage.get(id).filter(|t| !t.is_empty());
    let covered = statements
        .iter()
        .filter(|s| tests_for(&s.id).is_some())
        .count();

    let mut out = String::new();
    out.push_str("# MQTT 3.1.1 conformance matrix\n\n");
    out.push_str(
        "<!-- Generated by `cargo xtask conformance`; do not edit by hand. -->\n\n\
         Every normative statement of MQTT 3.1.1, with the tests that check it. The\n\
         statement list and our short paraphrases live in `docs/statements.tsv`\n\
         (`id<TAB>owner<TAB>summary`); the owner is the crate expected to test it. A\n\
         test claims a statement by its name (`fn mqtt_4_7_2_1_...` claims\n\
         `MQTT-4.7.2-1`) or by a `// covers: MQTT-x.y.z-n` line directly above it.\n\
         Regenerate with `cargo xtask conformance`; CI runs\n\
         `cargo xtask conformance --check` and fails when this file is stale.\n\n",
    );
    let _ = writeln!(
        out,
        "**Covered: {covered} of {} statements.**\n",
        statements.len()
    );

    // Per-owner counts, owners in order of first appearance.
    let mut owners: Vec<(&str, usize, usize)> = Vec::new();
    for statement in statements {
        let hit = usize::from(tests_for(&statement.id).is_some());
        if let Some(entry) = owners.iter_mut().find(|(o, _, _)| *o == statement.owner) {
            entry.1 += 1;
            entry.2 += hit;
        } else {
            owners.push((&statement.owner, 1, hit));
        }
    }
    out.push_str("| Owner | Statements | Covered |\n|---|---:|---:|\n");
    for (owner, total, hit) in &owners {
        let _ = writeln!(out, "| {owner} | {total} | {hit} |");
    }
    out.push('\n');

    out.push_str("| Statement | Summary | Tested by |\n|---|---|---|\n");
    for statement in statements {
        let tested_by = match tests_for(&statement.id) {
            Some(tests) => tests
                .iter()
                .map(|t| format!("{}: [`{}`](../{})", t.krate, t.test, t.path))
                .collect::<Vec<_>>()
                .join("<br>"),
            None => format!("not yet (owner: {})", statement.owner),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            statement.id,
            cell(&statement.summary),
            tested_by
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fn_names_map_to_statement_ids() {
        assert_eq!(
            id_from_fn_name("mqtt_4_7_2_1_wildcard_does_not_match_dollar_topics").as_deref(),
            Some("MQTT-4.7.2-1")
        );
        assert_eq!(
            id_from_fn_name("mqtt_3_10_4_6_many_filters").as_deref(),
            Some("MQTT-3.10.4-6")
        );
        assert_eq!(
            id_from_fn_name("mqtt_1_5_3_2").as_deref(),
            Some("MQTT-1.5.3-2")
        );
        // Only the first four groups count.
        assert_eq!(
            id_from_fn_name("mqtt_2_2_2_1_2_3").as_deref(),
            Some("MQTT-2.2.2-1")
        );
        assert_eq!(id_from_fn_name("mqtt_sn_register_roundtrip"), None);
        assert_eq!(id_from_fn_name("mqtt_3_1_2_keepalive"), None);
        assert_eq!(id_from_fn_name("decode_mqtt_3_1_2_24"), None);
        assert_eq!(id_from_fn_name("mqtt__1_2_3"), None);
    }

    #[test]
    fn statement_ids_are_validated() {
        assert!(is_statement_id("MQTT-3.1.2-24"));
        assert!(is_statement_id("MQTT-3.10.4-6"));
        assert!(!is_statement_id("MQTT-3.1-24"));
        assert!(!is_statement_id("MQTT-3.1.2"));
        assert!(!is_statement_id("mqtt-3.1.2-24"));
        assert!(!is_statement_id("MQTT-3.1.x-2"));
    }

    #[test]
    fn fn_declarations_are_found() {
        assert_eq!(fn_name_on_line("fn plain() {"), Some("plain"));
        assert_eq!(
            fn_name_on_line("    pub(crate) fn mqtt_1_5_3_1_x()"),
            Some("mqtt_1_5_3_1_x")
        );
        assert_eq!(fn_name_on_line("async fn later(x: u8)"), Some("later"));
        assert_eq!(
            fn_name_on_line("#[test] fn inline_attr() {}"),
            Some("inline_attr")
        );
        assert_eq!(fn_name_on_line("fn generic<T>(t: T)"), Some("generic"));
        assert_eq!(fn_name_on_line("// fn commented_out()"), None);
        assert_eq!(fn_name_on_line("let dfn = 1;"), None);
        assert_eq!(fn_name_on_line("let f: fn(u8) = g;"), None);
    }

    #[test]
    fn covers_comments_are_parsed() {
        assert_eq!(
            covers_comment("// covers: MQTT-3.3.1-4, MQTT-2.2.2-2"),
            Some(vec!["MQTT-3.3.1-4".to_owned(), "MQTT-2.2.2-2".to_owned()])
        );
        assert_eq!(
            covers_comment("/// covers: MQTT-4.7.3-1"),
            Some(vec!["MQTT-4.7.3-1".to_owned()])
        );
        assert_eq!(covers_comment("// nothing to see"), None);
        assert_eq!(covers_comment("let covers = 1; // covers: x"), None);
    }

    #[test]
    fn sources_yield_claims_from_names_and_comments() {
        let source = "\
#[test]
fn mqtt_3_1_0_1_first_packet_is_connect() {}

// covers: MQTT-2.2.2-1, MQTT-2.2.2-2
#[test]
// reserved bits in every packet type
fn every_first_byte_is_classified() {}

// covers: MQTT-1.5.3-1
let unrelated = 1;
fn not_claimed() {}

proptest! {
    #[test]
    fn mqtt_4_7_1_2_hash_is_last(s in \".*\") {}
}
";
        let claims = scan_source(source);
        let pairs: Vec<(&str, &str)> = claims
            .iter()
            .map(|(id, name)| (id.as_str(), name.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("MQTT-3.1.0-1", "mqtt_3_1_0_1_first_packet_is_connect"),
                ("MQTT-2.2.2-1", "every_first_byte_is_classified"),
                ("MQTT-2.2.2-2", "every_first_byte_is_classified"),
                ("MQTT-4.7.1-2", "mqtt_4_7_1_2_hash_is_last"),
            ]
        );
    }

    #[test]
    fn tsv_parses_and_rejects_bad_lines() {
        let good = "MQTT-1.5.3-1\tmidge-codec\tStrings must be valid UTF-8\n\
                    MQTT-4.7.2-1\tmidge-topic\tWildcards skip $ topics\n";
        let statements = parse_statements(good).unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[1],
            Statement {
                id: "MQTT-4.7.2-1".into(),
                owner: "midge-topic".into(),
                summary: "Wildcards skip $ topics".into(),
            }
        );
        assert!(parse_statements("MQTT-1.5.3-1\tmidge-codec\n").is_err());
        assert!(parse_statements("MQTT-1.5.3\tmidge-codec\tx\n").is_err());
        assert!(parse_statements("MQTT-1.5.3-1\tcodec\tx\n").is_err());
        assert!(parse_statements("MQTT-1.5.3-1\tmidge-codec\t \n").is_err());
        assert!(parse_statements(&format!("{good}{good}")).is_err());
    }

    fn sample() -> Vec<Statement> {
        parse_statements(
            "MQTT-1.5.3-1\tmidge-codec\tStrings must be valid UTF-8\n\
             MQTT-4.7.2-1\tmidge-topic\tWildcards | skip $ topics\n",
        )
        .unwrap()
    }

    fn claim(id: &str, test: &str) -> (Coverage, String) {
        (
            Coverage {
                krate: "midge-topic".into(),
                path: "crates/midge-topic/src/filter.rs".into(),
                test: test.into(),
            },
            id.into(),
        )
    }

    #[test]
    fn unknown_statement_in_a_test_name_is_an_error() {
        let err = attach(&sample(), vec![claim("MQTT-4.7.2-9", "mqtt_4_7_2_9_typo")]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("MQTT-4.7.2-9"), "{message}");
        assert!(
            message.contains("crates/midge-topic/src/filter.rs::mqtt_4_7_2_9_typo"),
            "{message}"
        );
    }

    #[test]
    fn table_lists_tests_in_order_and_marks_gaps() {
        let statements = sample();
        let coverage = attach(
            &statements,
            vec![
                claim("MQTT-4.7.2-1", "mqtt_4_7_2_1_z"),
                claim("MQTT-4.7.2-1", "mqtt_4_7_2_1_a"),
                claim("MQTT-4.7.2-1", "mqtt_4_7_2_1_a"),
            ],
        )
        .unwrap();
        let text = render(&statements, &coverage);
        assert!(text.contains("**Covered: 1 of 2 statements.**"), "{text}");
        assert!(
            text.contains(
                "| MQTT-1.5.3-1 | Strings must be valid UTF-8 | not yet (owner: midge-codec) |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| MQTT-4.7.2-1 | Wildcards \\| skip $ topics | \
             midge-topic: [`mqtt_4_7_2_1_a`](../crates/midge-topic/src/filter.rs)<br>\
             midge-topic: [`mqtt_4_7_2_1_z`](../crates/midge-topic/src/filter.rs) |"
            ),
            "{text}"
        );
        assert!(text.contains("| midge-codec | 1 | 0 |"), "{text}");
        assert!(text.contains("| midge-topic | 1 | 1 |"), "{text}");
        // Spec order (tsv order), not alphabetical.
        let first = text.find("| MQTT-1.5.3-1 |").unwrap();
        let second = text.find("| MQTT-4.7.2-1 |").unwrap();
        assert!(first < second);
        // Rendering is deterministic.
        assert_eq!(text, render(&statements, &coverage));
    }
}
