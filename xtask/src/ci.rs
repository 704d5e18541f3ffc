//! `cargo xtask ci`: the exact CI sequence. Each step prints a header; the first
//! failing step stops the run with a non-zero exit.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{self, cargo};

/// The crates that must build without `std`.
const NO_STD_CRATES: &[&str] = &[
    "midge-codec",
    "midge-topic",
    "midge-sn-codec",
    "midge-time",
    "midge-session",
    "midge-broker",
];

/// An embedded target (Cortex-M4F, no OS, no `std`) used to prove the no_std
/// crates really do not need `std`.
const EMBEDDED_TARGET: &str = "thumbv7em-none-eabihf";

/// One CI step: runs from the repository root.
type Step = fn(&Path) -> Result<()>;

/// Runs every CI step in order.
pub(crate) fn run(root: &Path) -> Result<()> {
    let steps: [(&str, Step); 9] = [
        ("format (cargo fmt --check)", fmt),
        ("lints (cargo clippy -D warnings)", clippy),
        (
            "interop peers (mosquitto, paho-mqtt)",
            crate::peers::install,
        ),
        ("tests (cargo test --workspace)", test),
        ("no_std builds", no_std),
        ("docs (cargo doc, warnings denied)", docs),
        ("tidy (layering and manifests)", crate::tidy::run),
        ("conformance matrix is current", conformance_check),
        ("fuzz targets build", fuzz_build),
    ];
    let total = steps.len();
    for (index, (name, step)) in steps.iter().enumerate() {
        println!();
        println!("==> [{}/{total}] {name}", index + 1);
        step(root).with_context(|| format!("CI step {}/{total} ({name}) failed", index + 1))?;
    }
    println!();
    println!("==> CI passed: all {total} steps");
    Ok(())
}

fn fmt(root: &Path) -> Result<()> {
    util::run(&mut cargo(root, ["fmt", "--all", "--", "--check"]))
}

fn clippy(root: &Path) -> Result<()> {
    util::run(&mut cargo(
        root,
        [
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ))
}

fn test(root: &Path) -> Result<()> {
    // Inherited stdout: cargo test's own `test result:` lines reach the CI log.
    let mut cmd = cargo(root, ["test", "--workspace"]);
    crate::peers::apply_test_env(&mut cmd);
    util::run(&mut cmd)
}

fn no_std_check(root: &Path, target: Option<&str>) -> Command {
    let mut cmd = cargo(root, ["check"]);
    for krate in NO_STD_CRATES {
        cmd.args(["-p", krate]);
    }
    cmd.arg("--no-default-features");
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    cmd
}

fn no_std(root: &Path) -> Result<()> {
    util::run(&mut no_std_check(root, None))?;
    if embedded_target_available() {
        util::run(&mut no_std_check(root, Some(EMBEDDED_TARGET)))?;
    } else {
        println!(
            "note: target {EMBEDDED_TARGET} is not installed and could not be added; \
             skipping the embedded no_std build"
        );
    }
    Ok(())
}

/// Whether the embedded target is installed, trying once to install it.
fn embedded_target_available() -> bool {
    let installed = || {
        util::output(Command::new("rustup").args(["target", "list", "--installed"]))
            .map(|list| list.lines().any(|line| line.trim() == EMBEDDED_TARGET))
            .unwrap_or(false)
    };
    if installed() {
        return true;
    }
    println!("$ rustup target add {EMBEDDED_TARGET}");
    match Command::new("rustup")
        .args(["target", "add", EMBEDDED_TARGET])
        .status()
    {
        Ok(status) if status.success() => installed(),
        Ok(status) => {
            println!("note: `rustup target add {EMBEDDED_TARGET}` failed ({status})");
            false
        }
        Err(err) => {
            println!("note: could not run rustup: {err}");
            false
        }
    }
}

fn docs(root: &Path) -> Result<()> {
    let mut cmd = cargo(root, ["doc", "--workspace", "--no-deps"]);
    cmd.env("RUSTDOCFLAGS", "-D warnings");
    util::run(&mut cmd)
}

fn conformance_check(root: &Path) -> Result<()> {
    crate::conformance::run(root, &[String::from("--check")])
}

fn fuzz_build(root: &Path) -> Result<()> {
    // libfuzzer-sys compiles and links on stable without cargo-fuzz; this proves
    // the targets build, it does not fuzz (see `cargo xtask fuzz`).
    util::run(&mut cargo(
        root,
        ["build", "--manifest-path", "fuzz/Cargo.toml", "--bins"],
    ))
}
