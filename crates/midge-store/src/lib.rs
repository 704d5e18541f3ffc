//! The durable store of the Midge broker: [`DiskStore`] implements the
//! broker's [`Store`] trait on `fjall`, an embedded log-structured database
//! that needs no server (chosen by measurement against `redb`: see
//! `docs/benchmarks.md`, "Store engines").
//!
//! What it keeps, in one database directory: persistent sessions'
//! subscriptions with their QoS, their recorded [`SessionState`] (inflight
//! messages with their packet ids, unsent messages, inbound QoS 2 ids),
//! their queues (entries referring to messages stored once, however many
//! queues hold them, with a reference count), and retained messages.
//! Messages are stored as their PUBLISH packets.
//!
//! Durability: the `save_*`/`push_*`/`remove_*` calls collect their
//! changes in memory (reads see them), and [`Store::commit`] writes them
//! as one atomic batch and syncs the journal (one `fsync` for everything
//! recorded since the last commit). A crash loses exactly what was recorded
//! after the last successful commit, never part of a commit. Memory is
//! bounded by the changes of one commit interval plus the engine's buffers
//! ([`StoreOptions`]). Dropping the store commits what is pending;
//! [`DiskStore::abandon`] drops it as a crash would.
//!
//! Recovery never refuses to start: [`DiskStore::open`] checks the format
//! version key and reads every record; a database the engine cannot open,
//! of another format version, or with a record that does not decode is
//! moved aside (renamed with a timestamp suffix), every record that still
//! decodes is copied into a fresh database, and the problem is handed back
//! in [`Opened::recovery`] for the caller to log and count.
//!
//! What it deliberately does not do: decide what to store (the broker's
//! `Router` does), run a runtime or threads of its own beyond the engine's
//! (it is a leaf crate, driven synchronously), or keep anything in memory
//! beyond the engine's caches. [`DiskStore::dump`] writes a human-readable
//! view for support (`midge store dump`).
//!
//! The MQTT-SN gateway's records (topic registries, sleeping clients and
//! their buffered messages) have a small database of their own,
//! [`GatewayStore`] (module [`gateway`]), with the same commit and recovery
//! rules.
//!
//! Key types: [`DiskStore`], [`StoreOptions`], [`Opened`], [`Recovery`],
//! [`StoreError`], [`GatewayStore`].
#![forbid(unsafe_code)]

mod codec;
pub mod gateway;

use std::collections::BTreeMap;
use std::io::Write;
use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use midge_broker::{
    with_entry_qos, InflightMessage, MessageId, QueuedMessage, Recovered, RecoveredSession,
    SessionState, Store,
};
use midge_codec::{Filter, Publish, QoS};

/// The on-disk format this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const FORMAT_KEY: &str = "format_version";

pub use gateway::{GatewayOpened, GatewayStore, GATEWAY_FORMAT_VERSION};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine reported an error (I/O, a damaged file, a poisoned
    /// database after a failed sync).
    #[error("storage engine: {0}")]
    Engine(String),
    /// A record does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(&'static str),
    /// The database was written in another format version.
    #[error("on-disk format version {found:?}, this build reads {FORMAT_VERSION}")]
    FormatVersion {
        /// The version found, if it could be read at all.
        found: Option<u32>,
    },
    /// Another process (or another `DiskStore` in this one) has the
    /// database open. Nothing was moved: this is not damage.
    #[error("the store is in use by another process")]
    Locked,
    /// Moving a damaged database aside failed.
    #[error("could not move the damaged store aside: {0}")]
    MoveAside(String),
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        match e {
            fjall::Error::Locked => Self::Locked,
            e => Self::Engine(e.to_string()),
        }
    }
}

/// What [`DiskStore::open`] found wrong and did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// What was wrong with the database.
    pub error: StoreError,
    /// Where the damaged database now is.
    pub moved_to: PathBuf,
    /// Records copied from it into the fresh database.
    pub salvaged: u64,
    /// Records that could not be read and were left behind.
    pub lost: u64,
}

/// An opened store, and what had to be repaired to open it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Opened {
    /// The store, ready.
    pub store: DiskStore,
    /// `Some` when the database was damaged and has been replaced: log it
    /// loudly and count it.
    pub recovery: Option<Recovery>,
}

/// How much memory the engine may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// The write buffer (memtable) of each of the six keyspaces, in bytes,
    /// before it is flushed to disk. Default 4 MiB.
    pub memtable_bytes: u64,
    /// The block cache shared by all keyspaces, in bytes. Default 16 MiB.
    pub cache_bytes: u64,
    /// Whether a commit waits for the disk (fsync of the journal). With
    /// `false` a commit still writes one atomic batch to the operating
    /// system, which survives a crash of the process but not of the
    /// machine. Default `true`.
    pub sync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            memtable_bytes: 4 * 1024 * 1024,
            cache_bytes: 16 * 1024 * 1024,
            sync: true,
        }
    }
}

/// A key and its value.
type Record = (Vec<u8>, Vec<u8>);

/// Changes recorded since the last commit, per keyspace: `None` deletes.
type Pending = [BTreeMap<Vec<u8>, Option<Vec<u8>>>; 6];

const META: usize = 0;
const SUBS: usize = 1;
const STATES: usize = 2;
const QUEUES: usize = 3;
const MESSAGES: usize = 4;
const RETAINED: usize = 5;

/// A [`Store`] in a database directory.
pub struct DiskStore {
    db: Database,
    meta: Keyspace,
    subs: Keyspace,
    states: Keyspace,
    queues: Keyspace,
    messages: Keyspace,
    retained: Keyspace,
    pending: Pending,
    path: PathBuf,
    /// [`StoreOptions::sync`].
    sync: bool,
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        // A clean close keeps what was recorded; an error here has no one
        // to go to, and the changes are then lost as in a crash.
        let _ = self.commit_pending();
    }
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The names of the keyspaces, in dump order.
const KEYSPACES: [&str; 6] = ["meta", "subs", "states", "queues", "messages", "retained"];

impl DiskStore {
    /// Opens the store in directory `path`, creating it if needed. A
    /// database that cannot be opened or read completely is moved aside
    /// and replaced (see the crate documentation); the only errors left are
    /// those that leave no way to store anything (the directory cannot be
    /// moved or created).
    ///
    /// # Errors
    /// [`StoreError::Locked`] when the database is open elsewhere; other
    /// errors when neither the existing database nor a fresh one can be
    /// opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Opened, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// [`DiskStore::open`] with engine memory limits.
    ///
    /// # Errors
    /// As [`DiskStore::open`].
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Opened, StoreError> {
        let path = path.as_ref().to_path_buf();
        let error = match Self::open_checked(&path, options) {
            Ok(store) => {
                return Ok(Opened {
                    store,
                    recovery: None,
                })
            }
            // A database in use is not damaged: refuse, move nothing.
            Err(StoreError::Locked) => return Err(StoreError::Locked),
            Err(e) => e,
        };
        let moved_to = aside_name(&path);
        std::fs::rename(&path, &moved_to).map_err(|e| StoreError::MoveAside(e.to_string()))?;
        let store = Self::open_unchecked(&path, options)?;
        store.write_format()?;
        let (salvaged, lost) = match Self::open_unchecked(&moved_to, options) {
            Ok(old) => old.copy_into(&store),
            Err(_) => (0, 0),
        };
        store.db.persist(PersistMode::SyncAll)?;
        Ok(Opened {
            store,
            recovery: Some(Recovery {
                error,
                moved_to,
                salvaged,
                lost,
            }),
        })
    }

    /// The database directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_unchecked(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let db = Database::builder(path)
            .cache_size(options.cache_bytes)
            .open()?;
        let memtable = options.memtable_bytes.max(1024 * 1024);
        let ks = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable)
            })
        };
        Ok(Self {
            meta: ks("meta")?,
            subs: ks("subs")?,
            states: ks("states")?,
            queues: ks("queues")?,
            messages: ks("messages")?,
            retained: ks("retained")?,
            db,
            pending: Pending::default(),
            path: path.to_path_buf(),
            sync: options.sync,
        })
    }

    fn open_checked(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let store = Self::open_unchecked(path, options)?;
        match store.meta.get(FORMAT_KEY)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref()).ok().map(u32::from_be_bytes);
                if found != Some(FORMAT_VERSION) {
                    return Err(StoreError::FormatVersion { found });
                }
            }
            None => {
                if store.keyspaces().iter().any(|k| k.iter().next().is_some()) {
                    return Err(StoreError::FormatVersion { found: None });
                }
                store.write_format()?;
                store.db.persist(PersistMode::SyncAll)?;
            }
        }
        store.validate()?;
        Ok(store)
    }

    fn write_format(&self) -> Result<(), StoreError> {
        self.meta.insert(FORMAT_KEY, FORMAT_VERSION.to_be_bytes())?;
        Ok(())
    }

    fn keyspaces(&self) -> [&Keyspace; 6] {
        [
            &self.meta,
            &self.subs,
            &self.states,
            &self.queues,
            &self.messages,
            &self.retained,
        ]
    }

    /// Reads and decodes every record.
    fn validate(&self) -> Result<(), StoreError> {
        for (i, ks) in self.keyspaces().into_iter().enumerate() {
            for kv in ks.iter() {
                let (k, v) = kv.into_inner()?;
                check_record(i, &k, &v)?;
            }
        }
        Ok(())
    }

    /// Copies every record that reads and decodes into `into`; returns
    /// (copied, left behind).
    fn copy_into(&self, into: &Self) -> (u64, u64) {
        let (mut copied, mut lost) = (0u64, 0u64);
        for (i, (from, to)) in self
            .keyspaces()
            .into_iter()
            .zip(into.keyspaces())
            .enumerate()
            .skip(1)
        {
            for kv in from.iter() {
                let ok = match kv.into_inner() {
                    Ok((k, v)) => check_record(i, &k, &v).is_ok() && to.insert(k, v).is_ok(),
                    Err(_) => false,
                };
                if ok {
                    copied += 1;
                } else {
                    lost += 1;
                }
            }
        }
        (copied, lost)
    }

    /// Opens the database in `path` as it is, without the checks of
    /// [`DiskStore::open`] and without moving anything aside, and writes
    /// [`DiskStore::dump`] of it to `w`: for `midge store dump`, which must
    /// show a damaged store rather than repair it. The broker must not be
    /// running on it ([`StoreError::Locked`]).
    ///
    /// # Errors
    /// When the engine cannot open the database, or writing fails
    /// ([`StoreError::Engine`] with the I/O error's text); unreadable
    /// records are shown in the output and end in an error too.
    pub fn dump_path(path: impl AsRef<Path>, w: &mut impl Write) -> Result<(), StoreError> {
        let path = path.as_ref();
        if !path.is_dir() {
            return Err(StoreError::Engine(format!(
                "no store at {}",
                path.display()
            )));
        }
        let store = Self::open_unchecked(path, StoreOptions::default())?;
        store.dump(w).map_err(|e| StoreError::Engine(e.to_string()))
    }

    /// Writes a human-readable view of everything stored, one record a
    /// line, for support.
    ///
    /// # Errors
    /// When writing to `w` fails, or a record cannot be read (reported in
    /// the output and as the error at the end).
    pub fn dump(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut bad = 0u64;
        for (i, name) in KEYSPACES.iter().enumerate() {
            writeln!(w, "[{name}]")?;
            for kv in self.scan(i, Vec::new(), &[]) {
                let line = kv.and_then(|(k, v)| describe(i, &k, &v));
                match line {
                    Ok(line) => writeln!(w, "  {line}")?,
                    Err(e) => {
                        bad += 1;
                        writeln!(w, "  unreadable record: {e}")?;
                    }
                }
            }
        }
        if bad > 0 {
            return Err(std::io::Error::other(format!("{bad} unreadable records")));
        }
        Ok(())
    }

    /// The number of messages stored, each once however many queues refer
    /// to it.
    ///
    /// # Errors
    /// When the engine cannot read.
    pub fn message_count(&self) -> Result<usize, StoreError> {
        self.scan(MESSAGES, Vec::new(), &[])
            .try_fold(0, |n, kv| kv.map(|_| n + 1))
    }

    /// The number of queue entries over all sessions.
    ///
    /// # Errors
    /// When the engine cannot read.
    pub fn queue_entry_count(&self) -> Result<usize, StoreError> {
        self.scan(QUEUES, Vec::new(), &[])
            .try_fold(0, |n, kv| kv.map(|_| n + 1))
    }

    /// Drops the changes recorded since the last commit and closes the
    /// store, as a crash at this point would: the next open finds what was
    /// committed.
    pub fn abandon(mut self) {
        self.pending = Pending::default();
    }

    fn keyspace(&self, ks: usize) -> &Keyspace {
        match ks {
            META => &self.meta,
            SUBS => &self.subs,
            STATES => &self.states,
            QUEUES => &self.queues,
            MESSAGES => &self.messages,
            _ => &self.retained,
        }
    }

    /// The value of `key`, pending changes first.
    fn get(&self, ks: usize, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.pending.get(ks).and_then(|m| m.get(key)) {
            return Ok(v.clone());
        }
        Ok(self.keyspace(ks).get(key)?.map(|v| v.to_vec()))
    }

    fn put(&mut self, ks: usize, key: Vec<u8>, value: Vec<u8>) {
        if let Some(m) = self.pending.get_mut(ks) {
            m.insert(key, Some(value));
        }
    }

    fn del(&mut self, ks: usize, key: Vec<u8>) {
        if let Some(m) = self.pending.get_mut(ks) {
            m.insert(key, None);
        }
    }

    /// The records of `ks` from `from` on whose keys start with `prefix`,
    /// in key order, pending changes merged in.
    fn scan<'a>(
        &'a self,
        ks: usize,
        from: Vec<u8>,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a {
        let db = self
            .keyspace(ks)
            .range(from.clone()..)
            .map(|g| {
                g.into_inner()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
            .peekable();
        let empty = const { &BTreeMap::new() };
        let pending = self
            .pending
            .get(ks)
            .unwrap_or(empty)
            .range(from..)
            .peekable();
        Merge { db, pending }.take_while(move |kv| match kv {
            Ok((k, _)) => k.starts_with(prefix),
            Err(_) => true,
        })
    }

    /// Writes the pending changes as one batch and (with
    /// [`StoreOptions::sync`]) syncs the journal.
    fn commit_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.iter().all(BTreeMap::is_empty) {
            return Ok(());
        }
        let mode = if self.sync {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        };
        let mut batch = self.db.batch().durability(Some(mode));
        for (ks, changes) in self.pending.iter().enumerate() {
            let keyspace = self.keyspace(ks);
            for (k, v) in changes {
                match v {
                    Some(v) => batch.insert(keyspace, k.as_slice(), v.as_slice()),
                    None => batch.remove(keyspace, k.as_slice()),
                }
            }
        }
        batch.commit()?;
        self.pending = Pending::default();
        Ok(())
    }

    fn unref(&mut self, message: MessageId) -> Result<(), StoreError> {
        let key = message.to_be_bytes().to_vec();
        let Some(mut v) = self.get(MESSAGES, &key)? else {
            return Ok(());
        };
        let refs = codec::message_refs(&v)?.saturating_sub(1);
        if refs == 0 {
            self.del(MESSAGES, key);
        } else {
            codec::set_message_refs(&mut v, refs);
            self.put(MESSAGES, key, v);
        }
        Ok(())
    }

    fn client_records(&self, ks: usize, client_id: &str) -> Result<Vec<Record>, StoreError> {
        let prefix = codec::client_prefix(client_id);
        self.scan(ks, prefix.clone(), &prefix).collect()
    }
}

/// The database's records merged with the pending changes (which win).
struct Merge<'a, I: Iterator> {
    db: Peekable<I>,
    pending: Peekable<std::collections::btree_map::Range<'a, Vec<u8>, Option<Vec<u8>>>>,
}

impl<I> Iterator for Merge<'_, I>
where
    I: Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>>,
{
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.db.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)) | Some(Ok(_)), None) => return self.db.next(),
                (Some(Err(_)), Some(_)) => return self.db.next(),
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(Ok((dk, _))), Some((pk, _))) => dk.as_slice().cmp(pk.as_slice()),
            };
            match order {
                std::cmp::Ordering::Less => return self.db.next(),
                std::cmp::Ordering::Equal => {
                    // The pending change replaces the stored record.
                    self.db.next();
                }
                std::cmp::Ordering::Greater => {}
            }
            // A pending deletion hides the stored record and yields nothing.
            if let Some((k, Some(v))) = self.pending.next() {
                return Some(Ok((k.clone(), v.clone())));
            }
        }
    }
}

/// The timestamped name a damaged database is moved to.
fn aside_name(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".corrupt-{secs}"));
    let mut candidate = path.with_file_name(&name);
    let mut n = 1u32;
    while candidate.exists() && n < 1000 {
        let mut numbered = name.clone();
        numbered.push(format!("-{n}"));
        candidate = path.with_file_name(numbered);
        n += 1;
    }
    candidate
}

/// Decodes a record of keyspace number `ks` (in [`KEYSPACES`] order).
fn check_record(ks: usize, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
    describe(ks, k, v).map(|_| ())
}

/// A record of keyspace number `ks` as one line of text.
fn describe(ks: usize, k: &[u8], v: &[u8]) -> Result<String, StoreError> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(match ks {
        0 => format!("{} = {:?}", text(k), v),
        1 => {
            let (client, filter) = codec::split_client(k)?;
            let filter = std::str::from_utf8(filter).map_err(|_| StoreError::Corrupt("filter"))?;
            Filter::new(filter).map_err(|_| StoreError::Corrupt("filter"))?;
            let qos = codec::qos_from(*v.first().ok_or(StoreError::Corrupt("qos"))?)?;
            format!("{client:?} {filter:?} qos {}", codec::qos_byte(qos))
        }
        2 => {
            let (client, _) = codec::split_client(k)?;
            let s = codec::decode_state(v)?;
            let inflight: Vec<String> = s
                .inflight
                .iter()
                .map(|m| match m {
                    InflightMessage::Publish(p) => format!("publish {}", show(p)),
                    InflightMessage::PubRel(pid) => format!("pubrel {pid}"),
                    _ => "?".to_string(),
                })
                .collect();
            let queued: Vec<String> = s.queued.iter().map(show).collect();
            let inbound: Vec<String> = s.inbound_qos2.iter().map(|p| p.to_string()).collect();
            format!(
                "{client:?} inflight [{}] held [{}] inbound-qos2 [{}]",
                inflight.join(", "),
                queued.join(", "),
                inbound.join(", ")
            )
        }
        3 => {
            let (client, seq) = codec::split_client(k)?;
            let seq = codec::u64_from(seq)?;
            let (id, qos) = codec::decode_entry(v)?;
            format!(
                "{client:?} #{seq} -> message {id} qos {}",
                codec::qos_byte(qos)
            )
        }
        4 => {
            let id = codec::u64_from(k)?;
            let (refs, p) = codec::decode_message(v)?;
            format!("message {id} refs {refs} {}", show(&p))
        }
        _ => {
            let p = codec::decode_publish(v)?;
            format!("{:?} {}", text(k), show(&p))
        }
    })
}

fn show(p: &Publish) -> String {
    const SHOWN: usize = 64;
    let payload = p.payload.get(..SHOWN.min(p.payload.len())).unwrap_or(&[]);
    format!(
        "topic {:?} qos {} retain {} payload {} bytes {:?}{}",
        p.topic.as_str(),
        codec::qos_byte(p.qos()),
        p.retain,
        p.payload.len(),
        String::from_utf8_lossy(payload),
        if p.payload.len() > SHOWN { "…" } else { "" }
    )
}

impl Store for DiskStore {
    type Error = StoreError;

    fn save_subscription(
        &mut self,
        client_id: &str,
        filter: &Filter,
        qos: QoS,
    ) -> Result<(), Self::Error> {
        self.put(
            SUBS,
            codec::sub_key(client_id, filter),
            vec![codec::qos_byte(qos)],
        );
        Ok(())
    }

    fn remove_subscription(&mut self, client_id: &str, filter: &Filter) -> Result<(), Self::Error> {
        self.del(SUBS, codec::sub_key(client_id, filter));
        Ok(())
    }

    fn save_session_state(
        &mut self,
        client_id: &str,
        state: &SessionState,
    ) -> Result<(), Self::Error> {
        let key = codec::client_prefix(client_id);
        if state.is_empty() {
            self.del(STATES, key);
        } else {
            let value = codec::encode_state(state)?;
            self.put(STATES, key, value);
        }
        Ok(())
    }

    fn push_queued(
        &mut self,
        client_id: &str,
        seq: u64,
        message: MessageId,
        publish: &Publish,
    ) -> Result<(), Self::Error> {
        let key = codec::queue_key(client_id, seq);
        // The router never reuses a seq, so only an entry of this commit
        // could be replaced: the disk is not read for one.
        let replaced = self
            .pending
            .get(QUEUES)
            .and_then(|m| m.get(&key))
            .cloned()
            .flatten();
        if let Some(old) = replaced {
            let (old_id, _) = codec::decode_entry(&old)?;
            self.del(QUEUES, key.clone());
            self.unref(old_id)?;
        }
        let id = message.to_be_bytes().to_vec();
        let value = match self.get(MESSAGES, &id)? {
            Some(mut v) => {
                let refs = codec::message_refs(&v)?.saturating_add(1);
                codec::set_message_refs(&mut v, refs);
                v
            }
            None => codec::message_value(1, &codec::encode_publish(publish)?),
        };
        self.put(MESSAGES, id, value);
        self.put(
            QUEUES,
            key,
            codec::entry_value(message, publish.qos()).to_vec(),
        );
        Ok(())
    }

    fn remove_queued(&mut self, client_id: &str, seq: u64) -> Result<(), Self::Error> {
        let key = codec::queue_key(client_id, seq);
        let Some(v) = self.get(QUEUES, &key)? else {
            return Ok(());
        };
        let (id, _) = codec::decode_entry(&v)?;
        self.del(QUEUES, key);
        self.unref(id)
    }

    fn load_queue(
        &self,
        client_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, Self::Error> {
        let mut out = Vec::new();
        if after == Some(u64::MAX) {
            return Ok(out);
        }
        let start = codec::queue_key(client_id, after.map_or(0, |a| a.saturating_add(1)));
        let prefix = codec::client_prefix(client_id);
        for kv in self.scan(QUEUES, start, &prefix).take(limit) {
            let (k, v) = kv?;
            let seq = codec::u64_from(k.get(prefix.len()..).unwrap_or_default())?;
            let (id, qos) = codec::decode_entry(&v)?;
            let Some(m) = self.get(MESSAGES, &id.to_be_bytes())? else {
                return Err(StoreError::Corrupt("queue entry without its message"));
            };
            let (_, publish) = codec::decode_message(&m)?;
            out.push(QueuedMessage::new(seq, id, with_entry_qos(publish, qos)));
        }
        Ok(out)
    }

    fn remove_session(&mut self, client_id: &str) -> Result<(), Self::Error> {
        for (k, _) in self.client_records(SUBS, client_id)? {
            self.del(SUBS, k);
        }
        self.del(STATES, codec::client_prefix(client_id));
        for (k, v) in self.client_records(QUEUES, client_id)? {
            let (id, _) = codec::decode_entry(&v)?;
            self.del(QUEUES, k);
            self.unref(id)?;
        }
        Ok(())
    }

    fn save_retained(&mut self, publish: &Publish) -> Result<(), Self::Error> {
        let value = codec::encode_publish(publish)?;
        self.put(RETAINED, publish.topic.as_str().as_bytes().to_vec(), value);
        Ok(())
    }

    fn remove_retained(&mut self, topic: &str) -> Result<(), Self::Error> {
        self.del(RETAINED, topic.as_bytes().to_vec());
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Self::Error> {
        self.commit_pending()
    }

    fn recover(&self) -> Result<Recovered, Self::Error> {
        let mut sessions: BTreeMap<String, RecoveredSession> = BTreeMap::new();
        fn session(
            sessions: &mut BTreeMap<String, RecoveredSession>,
            id: String,
        ) -> &mut RecoveredSession {
            sessions
                .entry(id.clone())
                .or_insert_with(|| RecoveredSession::new(id))
        }
        for kv in self.scan(SUBS, Vec::new(), &[]) {
            let (k, v) = kv?;
            let (client, filter) = codec::split_client(&k)?;
            let filter = std::str::from_utf8(filter).map_err(|_| StoreError::Corrupt("filter"))?;
            let filter = Filter::new(filter).map_err(|_| StoreError::Corrupt("filter"))?;
            let qos = codec::qos_from(*v.first().ok_or(StoreError::Corrupt("qos"))?)?;
            session(&mut sessions, client)
                .subscriptions
                .push((filter, qos));
        }
        for kv in self.scan(STATES, Vec::new(), &[]) {
            let (k, v) = kv?;
            let (client, _) = codec::split_client(&k)?;
            session(&mut sessions, client).state = codec::decode_state(&v)?;
        }
        for kv in self.scan(QUEUES, Vec::new(), &[]) {
            let (k, _) = kv?;
            let (client, seq) = codec::split_client(&k)?;
            let seq = codec::u64_from(seq)?;
            let s = session(&mut sessions, client);
            s.queue_len += 1;
            s.next_seq = s.next_seq.max(seq.saturating_add(1));
        }
        let retained = self
            .scan(RETAINED, Vec::new(), &[])
            .map(|kv| codec::decode_publish(&kv?.1))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut next_message_id = 0;
        for kv in self.scan(MESSAGES, Vec::new(), &[]) {
            let (k, _) = kv?;
            next_message_id = codec::u64_from(&k)?.saturating_add(1);
        }
        // Subscriptions come back in filter order within a client.
        for s in sessions.values_mut() {
            s.subscriptions.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut recovered = Recovered::default();
        recovered.sessions = sessions.into_values().collect();
        recovered.retained = retained;
        recovered.next_message_id = next_message_id;
        Ok(recovered)
    }
}
