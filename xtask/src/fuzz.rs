//! `cargo xtask fuzz <target> [--seconds N]`: runs one cargo-fuzz target on
//! nightly, installing cargo-fuzz first if it is missing.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util;

const DEFAULT_SECONDS: u64 = 60;

/// Parsed `fuzz` arguments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FuzzArgs {
    pub(crate) target: String,
    pub(crate) seconds: u64,
}

pub(crate) fn parse_args(args: &[String]) -> Result<FuzzArgs> {
    let mut target = None;
    let mut seconds = DEFAULT_SECONDS;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--seconds" {
            let value = iter.next().context("--seconds needs a value")?;
            seconds = value
                .parse()
                .with_context(|| format!("--seconds: `{value}` is not a whole number"))?;
        } else if let Some(value) = arg.strip_prefix("--seconds=") {
            seconds = value
                .parse()
                .with_context(|| format!("--seconds: `{value}` is not a whole number"))?;
        } else if arg.starts_with('-') {
            bail!("unknown option `{arg}` (usage: cargo xtask fuzz <target> [--seconds N])");
        } else if target.is_none() {
            target = Some(arg.clone());
        } else {
            bail!("only one fuzz target at a time (got `{arg}` as well)");
        }
    }
    let target = target.context("usage: cargo xtask fuzz <target> [--seconds N]")?;
    Ok(FuzzArgs { target, seconds })
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let FuzzArgs { target, seconds } = parse_args(args)?;
    ensure_cargo_fuzz(root)?;

    let corpus = Path::new("fuzz").join("corpus").join(&target);
    std::fs::create_dir_all(root.join(&corpus))
        .with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = Path::new("fuzz").join("seeds").join(&target);

    // Go through rustup's `cargo` proxy so `+nightly` is honoured.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", &target])
        .arg(&corpus);
    // libFuzzer refuses corpus directories that do not exist; seeds are optional.
    if root.join(&seeds).is_dir() {
        cmd.arg(&seeds);
    } else {
        println!(
            "note: no seed directory {}; starting from the corpus only",
            seeds.display()
        );
    }
    cmd.arg("--").arg(format!("-max_total_time={seconds}"));
    util::run(&mut cmd)
}

fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .current_dir(root)
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return Ok(());
    }
    println!("cargo-fuzz is not installed; installing it");
    util::run(
        Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .current_dir(root),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn seconds_default_to_sixty() {
        let parsed = parse_args(&strings(&["decode_mqtt"])).unwrap();
        assert_eq!(
            parsed,
            FuzzArgs {
                target: "decode_mqtt".into(),
                seconds: 60
            }
        );
    }

    #[test]
    fn seconds_accept_both_spellings() {
        let a = parse_args(&strings(&["topic", "--seconds", "600"])).unwrap();
        let b = parse_args(&strings(&["--seconds=600", "topic"])).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.seconds, 600);
    }

    #[test]
    fn bad_arguments_are_rejected() {
        assert!(parse_args(&[]).is_err());
        assert!(parse_args(&strings(&["a", "b"])).is_err());
        assert!(parse_args(&strings(&["a", "--seconds"])).is_err());
        assert!(parse_args(&strings(&["a", "--seconds", "x"])).is_err());
        assert!(parse_args(&strings(&["a", "--jobs", "2"])).is_err());
    }
}
