//! Persistence: one store per router shard, in memory or on disk.
//!
//! With `persistence = "durable"` each shard opens a `midge_store::DiskStore`
//! in `DATA_DIR/shard-N` (created on first start). A damaged store is moved
//! aside and salvaged by the store itself; here it is logged loudly and
//! counted (`midge_store_recoveries_total`, `$SYS/broker/store/recoveries`).
//! A store held by another process stops the start-up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use midge_broker::{MemoryStore, MessageId, QueuedMessage, Recovered, SessionState, Store};
use midge_codec::{Filter, Publish, QoS};
use midge_store::{DiskStore, StoreError, StoreOptions};

/// The default data directory, relative to the working directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "midge-data";
/// The default bound of a batched commit.
pub(crate) const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(2);
/// Queue entries of an offline session kept in memory when durable.
pub(crate) const DEFAULT_OFFLINE_MEMORY_MESSAGES: usize = 8;

/// `persistence` values (key and `--persistence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Everything in memory; a restart starts empty.
    None,
    /// Sessions, queues and retained messages on disk under `data_dir`.
    Durable,
}

/// `fsync` values (key and `--fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Fsync {
    /// One commit per QoS 1/2 message, before its acknowledgement.
    Always,
    /// Commits grouped within `fsync_interval`; acknowledgements wait.
    Batch,
    /// Commits every `fsync_interval` without syncing the disk;
    /// acknowledgements do not wait.
    Never,
}

/// Persistence as resolved from the file and the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Persistence {
    pub(crate) mode: Mode,
    pub(crate) data_dir: PathBuf,
    pub(crate) fsync: Fsync,
    pub(crate) fsync_interval: Duration,
    pub(crate) offline_memory_messages: usize,
}

impl Default for Persistence {
    fn default() -> Self {
        Self {
            mode: Mode::Durable,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            fsync: Fsync::Batch,
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            offline_memory_messages: DEFAULT_OFFLINE_MEMORY_MESSAGES,
        }
    }
}

impl Persistence {
    /// The server's commit policy.
    pub(crate) fn durability(&self) -> midge_server::Durability {
        match (self.mode, self.fsync) {
            (Mode::None, _) => midge_server::Durability::Off,
            (Mode::Durable, Fsync::Always) => midge_server::Durability::Always,
            (Mode::Durable, Fsync::Batch) => midge_server::Durability::Batch(self.fsync_interval),
            (Mode::Durable, Fsync::Never) => midge_server::Durability::Never(self.fsync_interval),
        }
    }

    /// Opens one store per shard: in memory, or on disk under `data_dir`
    /// (with the number of damaged stores salvaged).
    ///
    /// # Errors
    /// As [`open_disk`].
    pub(crate) fn open(&self, shards: u32) -> Result<(Vec<ShardStore>, u64), String> {
        match self.mode {
            Mode::None => Ok((
                (0..shards)
                    .map(|_| ShardStore::Memory(MemoryStore::new()))
                    .collect(),
                0,
            )),
            Mode::Durable => open_disk(&self.data_dir, shards, self.fsync != Fsync::Never),
        }
    }
}

/// Sets what persistence changes in the server's options.
pub(crate) trait OfflineShare {
    /// With durable storage, only `offline_memory_messages` queue entries
    /// of an offline session stay in memory.
    fn with_offline_share(self, persistence: &Persistence) -> Self;
}

impl OfflineShare for midge_server::ServerOptions {
    fn with_offline_share(mut self, persistence: &Persistence) -> Self {
        if persistence.mode == Mode::Durable {
            self.router.offline_memory_messages = persistence.offline_memory_messages;
        }
        self
    }
}

/// A shard's store: in memory (`persistence = "none"`) or on disk.
#[derive(Debug)]
pub(crate) enum ShardStore {
    /// Nothing survives a restart.
    Memory(MemoryStore),
    /// A database directory per shard.
    Disk(Box<DiskStore>),
}

/// The directory of shard `shard`'s store under `data_dir`.
pub(crate) fn shard_dir(data_dir: &Path, shard: u32) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

/// Opens the disk stores of `shards` shards under `data_dir`, creating it
/// if needed. Returns the stores and the number of damaged ones that were
/// moved aside and salvaged.
///
/// # Errors
/// A message for the operator: the directory cannot be created, or a store
/// is in use by another process or cannot be opened at all.
pub(crate) fn open_disk(
    data_dir: &Path,
    shards: u32,
    sync: bool,
) -> Result<(Vec<ShardStore>, u64), String> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    let mut stores = Vec::new();
    let mut recoveries = 0u64;
    for shard in 0..shards {
        let dir = shard_dir(data_dir, shard);
        let mut options = StoreOptions::default();
        options.sync = sync;
        let opened = DiskStore::open_with(&dir, options).map_err(|e| match e {
            StoreError::Locked => format!(
                "the store {} is in use by another process (is another midged running with this --data-dir?)",
                dir.display()
            ),
            e => format!("cannot open the store {}: {e}", dir.display()),
        })?;
        if let Some(recovery) = &opened.recovery {
            recoveries += 1;
            tracing::error!(
                store = %dir.display(),
                moved_to = %recovery.moved_to.display(),
                salvaged = recovery.salvaged,
                lost = recovery.lost,
                error = %recovery.error,
                "STORE DAMAGED: moved aside and salvaged what could be read; starting with the salvaged records"
            );
        }
        stores.push(ShardStore::Disk(Box::new(opened.store)));
    }
    Ok((stores, recoveries))
}

/// The shard count a data directory was written with: a client id's
/// shard depends on it, so a durable broker keeps it across restarts.
/// Returns the count to run with: the recorded one if any (with a warning
/// when `configured` differs), else `configured`, which is then recorded.
///
/// # Errors
/// The directory or the `shards` file cannot be written or read.
pub(crate) fn shard_count(data_dir: &Path, configured: u32) -> Result<u32, String> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    let file = data_dir.join("shards");
    match std::fs::read_to_string(&file) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => {
                if n != configured {
                    tracing::warn!(
                        recorded = n,
                        configured,
                        "the data directory was written with {n} router shards; running with {n}"
                    );
                }
                Ok(n)
            }
            _ => Err(format!(
                "{} does not hold a shard count; remove it only if the directory holds a single shard-0 store",
                file.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&file, format!("{configured}\n"))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Ok(configured)
        }
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// Why a [`ShardStore`] call failed.
fn memory(e: core::convert::Infallible) -> StoreError {
    match e {}
}

macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            ShardStore::Memory($s) => $call.map_err(memory),
            ShardStore::Disk($s) => $call,
        }
    };
}

impl Store for ShardStore {
    type Error = StoreError;

    fn save_subscription(
        &mut self,
        client_id: &str,
        filter: &Filter,
        qos: QoS,
    ) -> Result<(), StoreError> {
        each!(self, s => s.save_subscription(client_id, filter, qos))
    }

    fn remove_subscription(&mut self, client_id: &str, filter: &Filter) -> Result<(), StoreError> {
        each!(self, s => s.remove_subscription(client_id, filter))
    }

    fn save_session_state(
        &mut self,
        client_id: &str,
        state: &SessionState,
    ) -> Result<(), StoreError> {
        each!(self, s => s.save_session_state(client_id, state))
    }

    fn push_queued(
        &mut self,
        client_id: &str,
        seq: u64,
        message: MessageId,
        publish: &Publish,
    ) -> Result<(), StoreError> {
        each!(self, s => s.push_queued(client_id, seq, message, publish))
    }

    fn remove_queued(&mut self, client_id: &str, seq: u64) -> Result<(), StoreError> {
        each!(self, s => s.remove_queued(client_id, seq))
    }

    fn load_queue(
        &self,
        client_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        each!(self, s => s.load_queue(client_id, after, limit))
    }

    fn remove_session(&mut self, client_id: &str) -> Result<(), StoreError> {
        each!(self, s => s.remove_session(client_id))
    }

    fn save_retained(&mut self, publish: &Publish) -> Result<(), StoreError> {
        each!(self, s => s.save_retained(publish))
    }

    fn remove_retained(&mut self, topic: &str) -> Result<(), StoreError> {
        each!(self, s => s.remove_retained(topic))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        each!(self, s => s.commit())
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        each!(self, s => s.recover())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_stores_are_opened_per_shard_and_refused_while_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (stores, recoveries) = open_disk(&data, 2, true).unwrap();
        assert_eq!(stores.len(), 2);
        assert_eq!(recoveries, 0);
        assert!(shard_dir(&data, 0).is_dir());
        assert!(shard_dir(&data, 1).is_dir());
        let again = open_disk(&data, 1, true);
        assert!(again.is_err_and(|e| e.contains("in use")));
        drop(stores);
        assert!(open_disk(&data, 1, true).is_ok());
    }
}
