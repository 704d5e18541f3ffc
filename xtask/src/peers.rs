//! `cargo xtask peers`: installs the interop peers (Mosquitto, its clients and a
//! paho-mqtt venv) through `scripts/install-test-peers.sh`, and tells the test
//! run where they are.
//!
//! `cargo xtask ci` runs this before the tests and then runs them with
//! `MIDGE_REQUIRE_PEERS=1` (a missing peer fails the interop tests instead of
//! skipping them) and `MIDGE_PYTHON` (the venv's interpreter).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::util;

/// The installer, relative to the repository root.
const SCRIPT: &str = "scripts/install-test-peers.sh";

/// The venv the script creates, relative to the repository root.
const VENV_PYTHON: &str = "target/peers/venv/bin/python";

/// The venv interpreter, once [`install`] has succeeded in this process.
static PYTHON: OnceLock<PathBuf> = OnceLock::new();

/// Runs the installer and remembers the venv interpreter it made.
pub(crate) fn install(root: &Path) -> Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(root.join(SCRIPT)).current_dir(root);
    // Inherited output: apt and pip progress, or their errors, reach the log.
    util::run(&mut cmd)?;
    let python = root.join(VENV_PYTHON);
    if !python.exists() {
        bail!("{SCRIPT} succeeded but {} does not exist", python.display());
    }
    // A second call in the same process finds the same path; keep the first.
    let _ = PYTHON.set(python);
    Ok(())
}

/// Sets the interop environment on a test command: peers required, and the
/// venv interpreter. Without a prior successful [`install`] it sets nothing,
/// so the interop tests skip loudly instead of failing.
pub(crate) fn apply_test_env(cmd: &mut Command) {
    if let Some(python) = PYTHON.get() {
        cmd.env("MIDGE_REQUIRE_PEERS", "1");
        cmd.env("MIDGE_PYTHON", python);
    }
}

/// `cargo xtask peers`: install, then print the environment for a manual run.
pub(crate) fn run(root: &Path) -> Result<()> {
    install(root)?;
    if let Some(python) = PYTHON.get() {
        println!();
        println!("Run the interop tests with the peers required:");
        println!(
            "  MIDGE_REQUIRE_PEERS=1 MIDGE_PYTHON={} cargo test -p midged -p midge",
            python.display()
        );
    }
    Ok(())
}
