//! The harness checked against a broker nobody here wrote: every paho and
//! mosquitto-client scenario must pass against Mosquitto, so that when one
//! fails against Midge the fault is Midge's, not the script's.
//!
//! These tests name no normative statement: they test the harness, not Midge.

use anyhow::Result;
use midge_testkit::{cli, find_python, paho, Mosquitto, MosquittoClients};

/// Runs a paho scenario against a fresh Mosquitto, or skips.
fn paho_against_mosquitto(
    scenario: fn(&std::path::Path, u16, &str) -> Result<serde_json::Value>,
    prefix: &str,
) -> Result<()> {
    let Some(python) = find_python()? else {
        return Ok(());
    };
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let report = scenario(&python, broker.port(), prefix)?;
    println!("{prefix}: {report}");
    Ok(())
}

/// Runs a mosquitto-client scenario against a fresh Mosquitto, or skips.
fn cli_against_mosquitto(
    scenario: fn(&MosquittoClients, u16, &str) -> Result<()>,
    prefix: &str,
) -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    scenario(&clients, broker.port(), prefix)
}

#[test]
fn harness_paho_qos_round_trip() -> Result<()> {
    paho_against_mosquitto(paho::qos_round_trip, "h-qos")
}

#[test]
fn harness_paho_retained() -> Result<()> {
    paho_against_mosquitto(paho::retained, "h-retained")
}

#[test]
fn harness_paho_will() -> Result<()> {
    paho_against_mosquitto(paho::will, "h-will")
}

#[test]
fn harness_paho_session_resume() -> Result<()> {
    paho_against_mosquitto(paho::session_resume, "h-resume")
}

#[test]
fn harness_paho_takeover() -> Result<()> {
    paho_against_mosquitto(paho::takeover, "h-takeover")
}

#[test]
fn harness_paho_keep_alive_expiry() -> Result<()> {
    paho_against_mosquitto(paho::keep_alive_expiry, "h-keepalive")
}

#[test]
fn harness_cli_qos_levels() -> Result<()> {
    cli_against_mosquitto(cli::qos_levels, "h-cli-qos")
}

#[test]
fn harness_cli_retained() -> Result<()> {
    cli_against_mosquitto(cli::retained, "h-cli-retained")
}

#[test]
fn harness_cli_will() -> Result<()> {
    cli_against_mosquitto(cli::will, "h-cli-will")
}

#[test]
fn harness_cli_session_resume() -> Result<()> {
    cli_against_mosquitto(cli::session_resume, "h-cli-resume")
}

#[test]
fn harness_process_guard_kills_on_drop() -> Result<()> {
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    let process = midge_testkit::Process::spawn("sleep", &mut cmd)?;
    let pid = process.id();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    anyhow::ensure!(proc_dir.exists(), "sleep is not running");
    drop(process);
    // Dropping killed and reaped it: its /proc entry is gone.
    anyhow::ensure!(!proc_dir.exists(), "sleep {pid} survived its guard");
    Ok(())
}

#[test]
fn harness_bounded_wait_fails_instead_of_hanging() -> Result<()> {
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    let mut process = midge_testkit::Process::spawn("sleep", &mut cmd)?;
    let waited = process.wait_timeout(std::time::Duration::from_millis(100));
    anyhow::ensure!(waited.is_err(), "a 30 s sleep finished within 100 ms?");
    let line = process
        .stdout()
        .wait_for(std::time::Duration::from_millis(100), |_| true);
    anyhow::ensure!(line.is_err(), "sleep printed a line?");
    Ok(())
}
