//! Finding peer programs (or skipping), and running the Python interop scripts.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::process::Process;

/// Directories searched after `PATH`: Debian installs the mosquitto broker in
/// `/usr/sbin`, which a non-root `PATH` often lacks.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// This crate's folder, `crates/midge-testkit`, fixed at build time; the
/// repository root is two levels up.
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Whether missing peers are errors: `MIDGE_REQUIRE_PEERS` is set to anything
/// but empty or `0` (`cargo xtask ci` sets it to `1`).
pub fn peers_required() -> bool {
    std::env::var_os("MIDGE_REQUIRE_PEERS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Reports a missing peer: an error when peers are required, otherwise a loud
/// SKIP line on stdout and stderr and `Ok(None)`.
fn missing<T>(what: &str, hint: &str) -> Result<Option<T>> {
    if peers_required() {
        bail!("interop peer {what} is missing and MIDGE_REQUIRE_PEERS is set: {hint}");
    }
    let line = format!(
        "SKIP: interop peer {what} is missing ({hint}); run `cargo xtask peers` to install it, \
         or set MIDGE_REQUIRE_PEERS=1 to make this a failure"
    );
    println!("{line}");
    eprintln!("{line}");
    Ok(None)
}

/// The first `program` on `PATH` or in the sbin directories.
pub(crate) fn search(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Finds the program `name` on `PATH` (or in the sbin directories). When it is
/// missing: `Err` if [`peers_required`], else a SKIP line and `Ok(None)`; a test
/// does `let Some(p) = find_peer("mosquitto")? else { return Ok(()) };`.
pub fn find_peer(name: &str) -> Result<Option<PathBuf>> {
    match search(name) {
        Some(path) => Ok(Some(path)),
        None => missing(
            name,
            "Debian packages mosquitto and mosquitto-clients provide it",
        ),
    }
}

/// Finds a Python interpreter that can import paho-mqtt: `MIDGE_PYTHON` if set
/// (it must exist), else the venv `cargo xtask peers` makes in
/// `target/peers/venv`, else `python3` on `PATH`. Missing or without paho: as
/// [`find_peer`].
pub fn find_python() -> Result<Option<PathBuf>> {
    let python = if let Some(given) = std::env::var_os("MIDGE_PYTHON") {
        let given = PathBuf::from(given);
        if !given.is_file() {
            bail!("MIDGE_PYTHON={} does not exist", given.display());
        }
        given
    } else {
        let venv = Path::new(MANIFEST_DIR).join("../../target/peers/venv/bin/python");
        match (venv.is_file(), search("python3")) {
            (true, _) => venv,
            (false, Some(system)) => system,
            (false, None) => return missing("python3", "no MIDGE_PYTHON and no python3"),
        }
    };
    let mut probe = Command::new(&python);
    probe.args(["-c", "import paho.mqtt.client"]);
    let mut process = Process::spawn("python probe", &mut probe)?;
    let status = process.wait_timeout(Duration::from_secs(30))?;
    if !status.success() {
        return missing(
            "paho-mqtt",
            &format!("{} cannot import paho.mqtt.client", python.display()),
        );
    }
    Ok(Some(python))
}

/// The path of an interop script in the repository's `tests/interop/`.
pub fn interop_script(name: &str) -> PathBuf {
    Path::new(MANIFEST_DIR)
        .join("../../tests/interop")
        .join(name)
}

/// Runs `python script args..`, waits at most `timeout` for it to exit, and
/// parses the last non-empty line of its stdout as JSON. Fails (with the
/// script's output) if it times out, exits unsuccessfully or prints no JSON.
pub fn run_python<I, S>(python: &Path, script: &Path, args: I, timeout: Duration) -> Result<Value>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(python);
    // Unbuffered, so a killed script still shows what it printed.
    cmd.arg("-u").arg(script).args(args);
    let name = script.file_name().map_or_else(
        || String::from("python"),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut process = Process::spawn(&name, &mut cmd)?;
    let status = process.wait_timeout(timeout)?;
    let stdout = process.stdout().wait_closed(Duration::from_secs(5))?;
    if !status.success() {
        bail!("{name} failed ({status})\n{}", process.output_so_far());
    }
    let last = stdout
        .iter()
        .rev()
        .find(|line| !line.trim().is_empty())
        .with_context(|| format!("{name} printed nothing\n{}", process.output_so_far()))?;
    serde_json::from_str(last).with_context(|| {
        format!(
            "{name}'s last line is not JSON: {last}\n{}",
            process.output_so_far()
        )
    })
}
