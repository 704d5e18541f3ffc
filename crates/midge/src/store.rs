//! `midge store dump DIR`: prints a human-readable view of a midged data
//! directory (every `shard-N` store in it) or of a single store directory,
//! as it is on disk, damaged or not, without changing it. midged must not
//! be running on it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::exit::{Exit, Failure};

/// `midge store ...`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    #[command(subcommand)]
    pub(crate) command: StoreCommand,
}

/// The `store` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum StoreCommand {
    /// Print every record of a durable store, one a line (sessions,
    /// subscriptions, queues, messages, retained): `midge store dump
    /// ./midge-data`. Stop midged first: the store is locked while it runs.
    Dump {
        /// A midged data directory (holding shard-0, shard-1, ...) or one
        /// store directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// The store directories under `dir`: its `shard-N` directories in shard
/// order, or `dir` itself when it has none.
fn stores(dir: &Path) -> Vec<PathBuf> {
    let mut shards: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name();
                    let n = name.to_str()?.strip_prefix("shard-")?.parse().ok()?;
                    e.path().is_dir().then(|| (n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    shards.sort();
    if shards.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        shards.into_iter().map(|(_, p)| p).collect()
    }
}

/// Runs `midge store`.
///
/// # Errors
/// A directory holding no store, a store in use by midged, or a closed
/// stdout (exit 1).
pub(crate) fn run(args: &StoreArgs) -> Result<(), Failure> {
    let StoreCommand::Dump { dir } = &args.command;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    dump(dir, &mut out)
}

fn dump(dir: &Path, out: &mut impl Write) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::new(
            Exit::Other,
            format!("{}: no such directory", dir.display()),
        ));
    }
    for store in stores(dir) {
        writeln!(out, "# store {}", store.display())
            .map_err(|e| Failure::new(Exit::Other, format!("cannot write: {e}")))?;
        midge_store::DiskStore::dump_path(&store, out).map_err(|e| {
            let hint = match e {
                midge_store::StoreError::Locked => " (stop midged first)",
                _ => "",
            };
            Failure::new(Exit::Other, format!("{}: {e}{hint}", store.display()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_broker::Store;
    use midge_codec::{Publish, QosPid, Topic};

    #[test]
    fn dumps_every_shard_of_a_data_directory_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for shard in [1u32, 0] {
            let path = dir.path().join(format!("shard-{shard}"));
            let mut store = midge_store::DiskStore::open(&path).unwrap().store;
            let publish = Publish::new(
                Topic::new(&format!("kept/{shard}")).unwrap(),
                QosPid::AtMostOnce,
                b"v".to_vec(),
            );
            store.save_retained(&publish).unwrap();
            store.commit().unwrap();
        }
        let mut out = Vec::new();
        dump(dir.path(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let zero = text.find("shard-0").unwrap();
        let one = text.find("shard-1").unwrap();
        assert!(zero < one);
        assert!(text.contains("kept/0") && text.contains("kept/1"));
    }

    #[test]
    fn no_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        assert!(dump(&dir.path().join("missing"), &mut out).is_err());
        assert!(out.is_empty());
    }
}
