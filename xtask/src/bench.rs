//! `cargo xtask bench [--report-only] [criterion args…]`: runs the criterion
//! benchmarks, then prints a Markdown table comparing Midge with the peer crates.
//!
//! Convention of the bench authors: a criterion group per case (for example
//! `decode_publish_qos1_64b`), and inside it one function per implementation:
//! `midge`, and the peer crates by name (`mqttbytes`, `mqttrs`, …).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::util::{self, cargo};

/// The function id that names our own implementation in every group.
const OURS: &str = "midge";

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let report_only = args.iter().any(|a| a == "--report-only");
    let passthrough: Vec<&String> = args.iter().filter(|a| *a != "--report-only").collect();
    if !report_only {
        let mut cmd = cargo(root, ["bench", "-p", "midge-benches", "--"]);
        cmd.args(passthrough);
        util::run(&mut cmd)?;
    } else if !passthrough.is_empty() {
        bail!("--report-only takes no criterion arguments");
    }
    let criterion_dir = target_dir(root).join("criterion");
    let results = collect(&criterion_dir)?;
    if results.is_empty() {
        bail!(
            "no criterion results under {}; run `cargo xtask bench` first",
            criterion_dir.display()
        );
    }
    print!("{}", render(&results));
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Median time in nanoseconds, per group, per function.
pub(crate) type Results = BTreeMap<String, BTreeMap<String, f64>>;

/// Reads every `new/benchmark.json` + `new/estimates.json` pair below `dir`.
fn collect(dir: &Path) -> Result<Results> {
    let mut results = Results::new();
    if !dir.is_dir() {
        return Ok(results);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("reading {}", current.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let in_new = path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|name| name == "new");
            if !in_new || path.file_name().is_none_or(|name| name != "benchmark.json") {
                continue;
            }
            let estimates = path.with_file_name("estimates.json");
            let benchmark = read_json(&path)?;
            let estimates = read_json(&estimates)?;
            let (group, function, median) = parse_result(&benchmark, &estimates)
                .with_context(|| format!("unexpected criterion output in {}", path.display()))?;
            results.entry(group).or_default().insert(function, median);
        }
    }
    Ok(results)
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Extracts (case, function, median ns) from criterion's two JSON files; the case
/// is the group id, plus the parameter when there is one.
pub(crate) fn parse_result(benchmark: &Value, estimates: &Value) -> Result<(String, String, f64)> {
    let group = benchmark
        .get("group_id")
        .and_then(Value::as_str)
        .context("no group_id")?;
    // A benchmark outside a group has no function id; treat it as ours.
    let function = benchmark
        .get("function_id")
        .and_then(Value::as_str)
        .unwrap_or(OURS);
    // A parameterised benchmark (`BenchmarkId::new("midge", 64)`) is its own case.
    let case = match benchmark.get("value_str").and_then(Value::as_str) {
        Some(value) => format!("{group}/{value}"),
        None => group.to_owned(),
    };
    let median = estimates
        .get("median")
        .and_then(|m| m.get("point_estimate"))
        .and_then(Value::as_f64)
        .context("no median.point_estimate")?;
    Ok((case, function.to_owned(), median))
}

/// Human-readable duration from nanoseconds.
pub(crate) fn format_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// The Markdown table: one row per (case, Midge variant, peer); ratio < 1.00
/// means Midge is faster. Every function whose name starts with `midge` is one
/// of ours (`midge` for the owned API, `midge_ref` for the borrowed view, …).
pub(crate) fn render(results: &Results) -> String {
    let mut out = String::new();
    out.push_str("| Case | Midge API | Midge time | Peer | Peer time | midge / peer |\n");
    out.push_str("|---|---|---:|---|---:|---:|\n");
    for (group, functions) in results {
        let ours: Vec<(&String, &f64)> = functions
            .iter()
            .filter(|(f, _)| f.starts_with(OURS))
            .collect();
        let peers: Vec<(&String, &f64)> = functions
            .iter()
            .filter(|(f, _)| !f.starts_with(OURS))
            .collect();
        if ours.is_empty() {
            for (peer, peer_ns) in &peers {
                let _ = writeln!(
                    out,
                    "| {group} | — | — | {peer} | {} | — |",
                    format_ns(**peer_ns)
                );
            }
            continue;
        }
        for (variant, ours_ns) in ours {
            if peers.is_empty() {
                let _ = writeln!(
                    out,
                    "| {group} | {variant} | {} | — | — | — |",
                    format_ns(*ours_ns)
                );
                continue;
            }
            for (peer, peer_ns) in &peers {
                let ratio = if **peer_ns > 0.0 {
                    format!("{:.2}", ours_ns / **peer_ns)
                } else {
                    String::from("—")
                };
                let _ = writeln!(
                    out,
                    "| {group} | {variant} | {} | {peer} | {} | {ratio} |",
                    format_ns(*ours_ns),
                    format_ns(**peer_ns)
                );
            }
        }
    }
    out.push_str("\nRatio = midge median / peer median; below 1.00 means Midge is faster.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_criterion_files() {
        let benchmark = serde_json::json!({
            "group_id": "decode_publish_qos1_64b",
            "function_id": "mqttbytes",
            "value_str": null,
        });
        let estimates = serde_json::json!({
            "mean": { "point_estimate": 130.0 },
            "median": { "point_estimate": 120.5 },
        });
        let (group, function, median) = parse_result(&benchmark, &estimates).unwrap();
        assert_eq!(group, "decode_publish_qos1_64b");
        assert_eq!(function, "mqttbytes");
        assert!((median - 120.5).abs() < f64::EPSILON);
    }

    #[test]
    fn parameterised_benchmarks_are_separate_cases() {
        let benchmark = serde_json::json!({
            "group_id": "decode_publish",
            "function_id": "midge",
            "value_str": "1024",
        });
        let estimates = serde_json::json!({ "median": { "point_estimate": 9.0 } });
        let (case, function, _) = parse_result(&benchmark, &estimates).unwrap();
        assert_eq!(case, "decode_publish/1024");
        assert_eq!(function, "midge");
    }

    #[test]
    fn missing_median_is_an_error() {
        let benchmark = serde_json::json!({ "group_id": "g", "function_id": "midge" });
        let estimates = serde_json::json!({ "mean": { "point_estimate": 1.0 } });
        assert!(parse_result(&benchmark, &estimates).is_err());
    }

    #[test]
    fn table_has_one_row_per_peer_with_ratio() {
        let mut results = Results::new();
        let group = results.entry("sn_decode_register".into()).or_default();
        group.insert("midge".into(), 50.0);
        group.insert("mqtt-sn".into(), 100.0);
        group.insert("other".into(), 25.0);
        let only_ours = results.entry("encode_connect".into()).or_default();
        only_ours.insert("midge".into(), 2_500.0);
        let table = render(&results);
        assert!(
            table.contains("| encode_connect | midge | 2.50 µs | — | — | — |"),
            "{table}"
        );
        assert!(
            table.contains("| sn_decode_register | midge | 50.0 ns | mqtt-sn | 100.0 ns | 0.50 |"),
            "{table}"
        );
        assert!(
            table.contains("| sn_decode_register | midge | 50.0 ns | other | 25.0 ns | 2.00 |"),
            "{table}"
        );
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(format_ns(12.34), "12.3 ns");
        assert_eq!(format_ns(1_500.0), "1.50 µs");
        assert_eq!(format_ns(2_000_000.0), "2.00 ms");
        assert_eq!(format_ns(3e9), "3.00 s");
    }
}
