//! The MQTT-SN gateway's state on disk: [`GatewayStore`] keeps the
//! per-client records of the gateway core
//! ([`midge_session::sn::gateway::ClientRecord`]: topic registry, will,
//! sleep duration, buffered messages) in a small fjall database of its own,
//! one record per client id, so the gateway finds its clients again after
//! a restart.
//!
//! It follows the rest of this crate: [`GatewayStore::apply`] collects
//! changes in memory, [`GatewayStore::commit`] writes them as one atomic
//! batch and syncs the journal; a crash loses what was applied after the
//! last successful commit, never part of one. A database that cannot be
//! opened, of another format version, or with a record that does not decode
//! is moved aside and the records that still decode are copied into a fresh
//! one ([`GatewayOpened::recovery`]).
//!
//! What it deliberately does not do: decide what to keep (the gateway core
//! does), share the broker's database (the gateway may run without a
//! durable broker store, and each keeps its own lock), or keep the
//! pre-defined topic table (it is configuration).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use midge_session::sn::gateway::{
    BufferedMessage, ClientRecord, PersistOp, TopicRecord, WillRecord,
};
use midge_sn_codec::QoS;

use crate::{aside_name, Recovery, StoreError};

/// The on-disk format of the gateway database this version writes and
/// reads.
pub const GATEWAY_FORMAT_VERSION: u32 = 1;

const FORMAT_KEY: &str = "gateway_format_version";

/// An opened [`GatewayStore`], the records it holds, and what had to be
/// repaired to open it.
#[derive(Debug)]
#[non_exhaustive]
pub struct GatewayOpened {
    /// The store, ready.
    pub store: GatewayStore,
    /// Every record, in client id order, for
    /// [`Gateway::restore`](midge_session::sn::gateway::Gateway::restore).
    pub records: Vec<ClientRecord>,
    /// `Some` when the database was damaged and has been replaced.
    pub recovery: Option<Recovery>,
}

/// The gateway's records in a database directory.
pub struct GatewayStore {
    db: Database,
    meta: Keyspace,
    clients: Keyspace,
    /// Changes since the last commit: `None` deletes.
    pending: BTreeMap<String, Option<Vec<u8>>>,
    path: PathBuf,
}

impl std::fmt::Debug for GatewayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayStore")
            .field("path", &self.path)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Drop for GatewayStore {
    fn drop(&mut self) {
        // A clean close keeps what was applied; an error here has no one to
        // go to, and the changes are then lost as in a crash.
        let _ = self.commit();
    }
}

impl GatewayStore {
    /// Opens the database in directory `path`, creating it if needed, and
    /// reads every record. A damaged database is moved aside and replaced
    /// (see the module documentation).
    ///
    /// # Errors
    /// [`StoreError::Locked`] when the database is open elsewhere; other
    /// errors when neither the existing database nor a fresh one can be
    /// opened.
    pub fn open(path: impl AsRef<Path>) -> Result<GatewayOpened, StoreError> {
        let path = path.as_ref().to_path_buf();
        let error = match Self::open_checked(&path) {
            Ok((store, records)) => {
                return Ok(GatewayOpened {
                    store,
                    records,
                    recovery: None,
                })
            }
            Err(StoreError::Locked) => return Err(StoreError::Locked),
            Err(e) => e,
        };
        let moved_to = aside_name(&path);
        std::fs::rename(&path, &moved_to).map_err(|e| StoreError::MoveAside(e.to_string()))?;
        let store = Self::open_unchecked(&path)?;
        store.write_format()?;
        let (mut salvaged, mut lost) = (0u64, 0u64);
        let mut records = Vec::new();
        if let Ok(old) = Self::open_unchecked(&moved_to) {
            for kv in old.clients.iter() {
                let copied = kv.into_inner().ok().and_then(|(k, v)| {
                    let record = decode_record(&k, &v).ok()?;
                    store.clients.insert(k, v).ok()?;
                    Some(record)
                });
                match copied {
                    Some(record) => {
                        salvaged += 1;
                        records.push(record);
                    }
                    None => lost += 1,
                }
            }
            // Nothing of the old database is written through this handle.
            old.abandon();
        }
        store.db.persist(PersistMode::SyncAll)?;
        Ok(GatewayOpened {
            store,
            records,
            recovery: Some(Recovery {
                error,
                moved_to,
                salvaged,
                lost,
            }),
        })
    }

    fn open_unchecked(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder(path).open()?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        let clients = db.keyspace("clients", KeyspaceCreateOptions::default)?;
        Ok(Self {
            db,
            meta,
            clients,
            pending: BTreeMap::new(),
            path: path.to_path_buf(),
        })
    }

    fn open_checked(path: &Path) -> Result<(Self, Vec<ClientRecord>), StoreError> {
        let store = Self::open_unchecked(path)?;
        match store.meta.get(FORMAT_KEY)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref()).ok().map(u32::from_be_bytes);
                if found != Some(GATEWAY_FORMAT_VERSION) {
                    return Err(StoreError::FormatVersion { found });
                }
            }
            None => {
                if store.clients.iter().next().is_some() {
                    return Err(StoreError::FormatVersion { found: None });
                }
                store.write_format()?;
                store.db.persist(PersistMode::SyncAll)?;
            }
        }
        let records = store.read_all()?;
        Ok((store, records))
    }

    fn write_format(&self) -> Result<(), StoreError> {
        self.meta
            .insert(FORMAT_KEY, GATEWAY_FORMAT_VERSION.to_be_bytes())?;
        Ok(())
    }

    fn read_all(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.clients
            .iter()
            .map(|kv| {
                let (k, v) = kv.into_inner()?;
                decode_record(&k, &v)
            })
            .collect()
    }

    /// The database directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one change, to be written by the next
    /// [`commit`](Self::commit).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a record is too large to encode (a
    /// length beyond the format's); nothing is recorded then.
    pub fn apply(&mut self, op: &PersistOp) -> Result<(), StoreError> {
        match op {
            PersistOp::Put(record) => {
                let value = encode_record(record)?;
                self.pending.insert(record.client_id.clone(), Some(value));
            }
            PersistOp::Delete(client_id) => {
                self.pending.insert(client_id.clone(), None);
            }
            // A kind of change this build does not know: nothing to keep.
            _ => {}
        }
        Ok(())
    }

    /// Changes applied and not yet committed.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes the applied changes as one batch and syncs the journal. On
    /// error the changes stay pending for the next commit.
    ///
    /// # Errors
    /// When the engine cannot write or sync.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (k, v) in &self.pending {
            match v {
                Some(v) => batch.insert(&self.clients, k.as_bytes(), v.as_slice()),
                None => batch.remove(&self.clients, k.as_bytes()),
            }
        }
        batch.commit()?;
        self.pending.clear();
        Ok(())
    }

    /// Every committed record, in client id order (changes not committed
    /// are not seen).
    ///
    /// # Errors
    /// When the engine cannot read or a record does not decode.
    pub fn records(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.read_all()
    }

    /// Drops the changes applied since the last commit and closes the
    /// store, as a crash at this point would.
    pub fn abandon(mut self) {
        self.pending.clear();
    }
}

const CLEAN: u8 = 0x01;
const ASLEEP: u8 = 0x02;
const WILL: u8 = 0x04;
const RETAIN: u8 = 0x01;
const KNOWN: u8 = 0x01;
const REJECTED: u8 = 0x02;

fn qos_byte(q: QoS) -> u8 {
    match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

fn qos_from(b: u8) -> Result<QoS, StoreError> {
    match b {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        2 => Ok(QoS::ExactlyOnce),
        _ => Err(StoreError::Corrupt("gateway record qos")),
    }
}

fn put_u32_len(v: &mut Vec<u8>, len: usize) -> Result<(), StoreError> {
    let len = u32::try_from(len).map_err(|_| StoreError::Corrupt("gateway record length"))?;
    v.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

fn put_bytes(v: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    put_u32_len(v, bytes.len())?;
    v.extend_from_slice(bytes);
    Ok(())
}

/// The value of a client's record (the client id is the key). Layout, all
/// integers big-endian: flags (clean session, asleep, will), keep alive
/// (u16), sleep (u16); if a will: QoS, retain, topic and message (u32
/// length + bytes each); topics: count (u32), then id (u16), flags (known,
/// rejected), name; buffered: count (u32), then QoS, retain, topic, data.
fn encode_record(r: &ClientRecord) -> Result<Vec<u8>, StoreError> {
    let mut v = Vec::new();
    let mut flags = 0u8;
    if r.clean_session {
        flags |= CLEAN;
    }
    if r.sleep.is_some() {
        flags |= ASLEEP;
    }
    if r.will.is_some() {
        flags |= WILL;
    }
    v.push(flags);
    v.extend_from_slice(&r.keep_alive.to_be_bytes());
    v.extend_from_slice(&r.sleep.unwrap_or(0).to_be_bytes());
    if let Some(w) = &r.will {
        v.push(qos_byte(w.qos));
        v.push(if w.retain { RETAIN } else { 0 });
        put_bytes(&mut v, w.topic.as_bytes())?;
        put_bytes(&mut v, &w.message)?;
    }
    put_u32_len(&mut v, r.topics.len())?;
    for t in &r.topics {
        v.extend_from_slice(&t.id.to_be_bytes());
        let mut f = 0u8;
        if t.known {
            f |= KNOWN;
        }
        if t.rejected {
            f |= REJECTED;
        }
        v.push(f);
        put_bytes(&mut v, t.name.as_bytes())?;
    }
    put_u32_len(&mut v, r.buffered.len())?;
    for m in &r.buffered {
        v.push(qos_byte(m.qos));
        v.push(if m.retain { RETAIN } else { 0 });
        put_bytes(&mut v, m.topic.as_bytes())?;
        put_bytes(&mut v, &m.data)?;
    }
    Ok(v)
}

/// Reads a value front to back; every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(StoreError::Corrupt("truncated gateway record"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        let mut a = [0u8; 1];
        a.copy_from_slice(self.take(1)?);
        Ok(a[0])
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(a))
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        usize::try_from(u32::from_be_bytes(a))
            .map_err(|_| StoreError::Corrupt("gateway record length"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| StoreError::Corrupt("gateway record text"))
    }

    /// A count of entries, each at least `min` bytes long: a count the
    /// remaining bytes cannot hold is damage, not a reason to allocate.
    fn count(&mut self, min: usize) -> Result<usize, StoreError> {
        let n = self.len()?;
        if n.saturating_mul(min) > self.0.len() {
            return Err(StoreError::Corrupt("gateway record count"));
        }
        Ok(n)
    }
}

fn decode_record(key: &[u8], value: &[u8]) -> Result<ClientRecord, StoreError> {
    let client_id = String::from_utf8(key.to_vec())
        .map_err(|_| StoreError::Corrupt("gateway record client id"))?;
    let mut r = Reader(value);
    let flags = r.u8()?;
    if flags & !(CLEAN | ASLEEP | WILL) != 0 {
        return Err(StoreError::Corrupt("gateway record flags"));
    }
    let keep_alive = r.u16()?;
    let sleep = r.u16()?;
    let will = if flags & WILL != 0 {
        let qos = qos_from(r.u8()?)?;
        let retain = r.u8()? & RETAIN != 0;
        let topic = r.string()?;
        let message = Bytes::copy_from_slice(r.bytes()?);
        Some(WillRecord {
            topic,
            qos,
            retain,
            message,
        })
    } else {
        None
    };
    let n = r.count(7)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u16()?;
        let f = r.u8()?;
        topics.push(TopicRecord {
            id,
            name: r.string()?,
            known: f & KNOWN != 0,
            rejected: f & REJECTED != 0,
        });
    }
    let n = r.count(10)?;
    let mut buffered = Vec::with_capacity(n);
    for _ in 0..n {
        let qos = qos_from(r.u8()?)?;
        let retain = r.u8()? & RETAIN != 0;
        let topic = r.string()?;
        let data = Bytes::copy_from_slice(r.bytes()?);
        buffered.push(BufferedMessage {
            topic,
            data,
            qos,
            retain,
        });
    }
    if !r.0.is_empty() {
        return Err(StoreError::Corrupt("gateway record trailing bytes"));
    }
    Ok(ClientRecord {
        client_id,
        clean_session: flags & CLEAN != 0,
        keep_alive,
        sleep: (flags & ASLEEP != 0).then_some(sleep),
        will,
        topics,
        buffered,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn sample() -> ClientRecord {
        ClientRecord {
            client_id: "sensor-1".to_owned(),
            clean_session: false,
            keep_alive: 60,
            sleep: Some(0),
            will: Some(WillRecord {
                topic: "s/1/status".to_owned(),
                qos: QoS::ExactlyOnce,
                retain: true,
                message: Bytes::from_static(b"offline"),
            }),
            topics: vec![TopicRecord {
                id: 0xFFFE,
                name: "s/1/temp".to_owned(),
                known: true,
                rejected: false,
            }],
            buffered: vec![BufferedMessage {
                topic: "s/1/cmd".to_owned(),
                data: Bytes::new(),
                qos: QoS::AtLeastOnce,
                retain: false,
            }],
        }
    }

    #[test]
    fn record_round_trips_and_every_truncation_is_refused() {
        let r = sample();
        let v = encode_record(&r).unwrap();
        assert_eq!(decode_record(b"sensor-1", &v).unwrap(), r);
        for cut in 0..v.len() {
            assert!(decode_record(b"sensor-1", &v[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = v.clone();
        longer.push(0);
        assert!(decode_record(b"sensor-1", &longer).is_err());
        assert!(decode_record(&[0xFF], &v).is_err());
    }

    #[test]
    fn a_huge_count_is_refused_without_allocating() {
        let mut v = vec![0u8; 5];
        v.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_record(b"x", &v),
            Err(StoreError::Corrupt("gateway record count"))
        );
    }
}
