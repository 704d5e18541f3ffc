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
//! Durability: every `save_*`/`push_*`/`remove_*` call writes to the
//! database's journal at once (so reads see it), and [`Store::commit`]
//! syncs the journal to disk (one `fsync` for everything recorded since
//! the last commit). A crash loses at most what was recorded after the last
//! commit; the journal keeps the order of the writes, so what comes back
//! is a prefix of what was recorded.
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
//! Key types: [`DiskStore`], [`Opened`], [`Recovery`], [`StoreError`].
#![forbid(unsafe_code)]

mod codec;

use std::io::Write;
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

/// A [`Store`] in a database directory.
pub struct DiskStore {
    db: Database,
    meta: Keyspace,
    subs: Keyspace,
    states: Keyspace,
    queues: Keyspace,
    messages: Keyspace,
    retained: Keyspace,
    path: PathBuf,
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
        let path = path.as_ref().to_path_buf();
        let error = match Self::open_checked(&path) {
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
        let store = Self::open_unchecked(&path)?;
        store.write_format()?;
        let (salvaged, lost) = match Self::open_unchecked(&moved_to) {
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

    fn open_unchecked(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder(path).open()?;
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Self {
            meta: ks("meta")?,
            subs: ks("subs")?,
            states: ks("states")?,
            queues: ks("queues")?,
            messages: ks("messages")?,
            retained: ks("retained")?,
            db,
            path: path.to_path_buf(),
        })
    }

    fn open_checked(path: &Path) -> Result<Self, StoreError> {
        let store = Self::open_unchecked(path)?;
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

    /// Writes a human-readable view of everything stored, one record a
    /// line, for support.
    ///
    /// # Errors
    /// When writing to `w` fails, or a record cannot be read (reported in
    /// the output and as the error at the end).
    pub fn dump(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut bad = 0u64;
        for (i, ks) in self.keyspaces().into_iter().enumerate() {
            let name = KEYSPACES.get(i).copied().unwrap_or("?");
            writeln!(w, "[{name}]")?;
            for kv in ks.iter() {
                let line = match kv.into_inner() {
                    Ok((k, v)) => describe(i, &k, &v),
                    Err(e) => Err(StoreError::from(e)),
                };
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
        Ok(self.messages.len()?)
    }

    /// The number of queue entries over all sessions.
    ///
    /// # Errors
    /// When the engine cannot read.
    pub fn queue_entry_count(&self) -> Result<usize, StoreError> {
        Ok(self.queues.len()?)
    }

    fn unref(&self, message: MessageId) -> Result<(), StoreError> {
        let key = message.to_be_bytes();
        let Some(v) = self.messages.get(key)? else {
            return Ok(());
        };
        let (refs, _) = codec::decode_message(&v)?;
        let refs = refs.saturating_sub(1);
        if refs == 0 {
            self.messages.remove(key)?;
        } else {
            let mut v = v.to_vec();
            if let Some(head) = v.get_mut(..4) {
                head.copy_from_slice(&refs.to_be_bytes());
            }
            self.messages.insert(key, v)?;
        }
        Ok(())
    }

    fn client_keys(&self, ks: &Keyspace, client_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        ks.prefix(codec::client_prefix(client_id))
            .map(|g| Ok(g.key()?.to_vec()))
            .collect()
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
        self.subs
            .insert(codec::sub_key(client_id, filter), [codec::qos_byte(qos)])?;
        Ok(())
    }

    fn remove_subscription(&mut self, client_id: &str, filter: &Filter) -> Result<(), Self::Error> {
        self.subs.remove(codec::sub_key(client_id, filter))?;
        Ok(())
    }

    fn save_session_state(
        &mut self,
        client_id: &str,
        state: &SessionState,
    ) -> Result<(), Self::Error> {
        let key = codec::client_prefix(client_id);
        if state.is_empty() {
            self.states.remove(key)?;
        } else {
            self.states.insert(key, codec::encode_state(state)?)?;
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
        if let Some(old) = self.queues.get(&key)? {
            let (old_id, _) = codec::decode_entry(&old)?;
            self.queues.remove(key.clone())?;
            self.unref(old_id)?;
        }
        // The message first: a crash between the two writes leaves an
        // unreferenced message, never a dangling reference.
        let id = message.to_be_bytes();
        let value = match self.messages.get(id)? {
            Some(v) => {
                let (refs, _) = codec::decode_message(&v)?;
                let mut v = v.to_vec();
                if let Some(head) = v.get_mut(..4) {
                    head.copy_from_slice(&refs.saturating_add(1).to_be_bytes());
                }
                v
            }
            None => codec::message_value(1, &codec::encode_publish(publish)?),
        };
        self.messages.insert(id, value)?;
        self.queues
            .insert(key, codec::entry_value(message, publish.qos()))?;
        Ok(())
    }

    fn remove_queued(&mut self, client_id: &str, seq: u64) -> Result<(), Self::Error> {
        let key = codec::queue_key(client_id, seq);
        let Some(v) = self.queues.get(&key)? else {
            return Ok(());
        };
        let (id, _) = codec::decode_entry(&v)?;
        self.queues.remove(key)?;
        self.unref(id)
    }

    fn load_queue(
        &self,
        client_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, Self::Error> {
        let start = codec::queue_key(client_id, after.map_or(0, |a| a.saturating_add(1)));
        let prefix = codec::client_prefix(client_id);
        let mut out = Vec::new();
        if after == Some(u64::MAX) {
            return Ok(out);
        }
        for kv in self.queues.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv.into_inner()?;
            let Some(seq) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let seq = codec::u64_from(seq)?;
            let (id, qos) = codec::decode_entry(&v)?;
            let Some(m) = self.messages.get(id.to_be_bytes())? else {
                return Err(StoreError::Corrupt("queue entry without its message"));
            };
            let (_, publish) = codec::decode_message(&m)?;
            out.push(QueuedMessage::new(seq, id, with_entry_qos(publish, qos)));
        }
        Ok(out)
    }

    fn remove_session(&mut self, client_id: &str) -> Result<(), Self::Error> {
        for k in self.client_keys(&self.subs, client_id)? {
            self.subs.remove(k)?;
        }
        self.states.remove(codec::client_prefix(client_id))?;
        for k in self.client_keys(&self.queues, client_id)? {
            if let Some(v) = self.queues.get(&k)? {
                let (id, _) = codec::decode_entry(&v)?;
                self.queues.remove(k)?;
                self.unref(id)?;
            }
        }
        Ok(())
    }

    fn save_retained(&mut self, publish: &Publish) -> Result<(), Self::Error> {
        self.retained
            .insert(publish.topic.as_str(), codec::encode_publish(publish)?)?;
        Ok(())
    }

    fn remove_retained(&mut self, topic: &str) -> Result<(), Self::Error> {
        self.retained.remove(topic)?;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Self::Error> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn recover(&self) -> Result<Recovered, Self::Error> {
        let mut sessions: std::collections::BTreeMap<String, RecoveredSession> =
            std::collections::BTreeMap::new();
        let entry = |m: &mut std::collections::BTreeMap<String, RecoveredSession>, id: String| {
            m.entry(id.clone())
                .or_insert_with(|| RecoveredSession::new(id));
        };
        for kv in self.subs.iter() {
            let (k, v) = kv.into_inner()?;
            let (client, filter) = codec::split_client(&k)?;
            let filter = std::str::from_utf8(filter).map_err(|_| StoreError::Corrupt("filter"))?;
            let filter = Filter::new(filter).map_err(|_| StoreError::Corrupt("filter"))?;
            let qos = codec::qos_from(*v.first().ok_or(StoreError::Corrupt("qos"))?)?;
            entry(&mut sessions, client.clone());
            if let Some(s) = sessions.get_mut(&client) {
                s.subscriptions.push((filter, qos));
            }
        }
        for kv in self.states.iter() {
            let (k, v) = kv.into_inner()?;
            let (client, _) = codec::split_client(&k)?;
            entry(&mut sessions, client.clone());
            if let Some(s) = sessions.get_mut(&client) {
                s.state = codec::decode_state(&v)?;
            }
        }
        for kv in self.queues.iter() {
            let (k, _) = kv.into_inner()?;
            let (client, seq) = codec::split_client(&k)?;
            let seq = codec::u64_from(seq)?;
            entry(&mut sessions, client.clone());
            if let Some(s) = sessions.get_mut(&client) {
                s.queue_len += 1;
                s.next_seq = s.next_seq.max(seq.saturating_add(1));
            }
        }
        let retained = self
            .retained
            .iter()
            .map(|kv| {
                let (_, v) = kv.into_inner()?;
                codec::decode_publish(&v)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next_message_id = match self.messages.last_key_value() {
            Some(g) => codec::u64_from(&g.key()?)?.saturating_add(1),
            None => 0,
        };
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
