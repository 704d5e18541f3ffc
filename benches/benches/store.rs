//! The embedded store engines side by side on the broker's write pattern:
//! `redb` against `fjall`, each with one durable commit (fsync) per batch.
//!
//! The pattern (the same bytes and keys for both engines):
//! - `append_fanout`: a batch of 100 messages of 64-byte payloads, each
//!   stored once (key: message id) with a reference count, and referenced
//!   from 16 of 1000 session queues (key: session id, sequence number); one
//!   durable commit per batch;
//! - `ack_delete`: a batch of 100 acknowledgements, each removing one queue
//!   entry and decrementing its message's count (deleting the message at
//!   zero); one durable commit per batch;
//! - `scan_queue`: reading one session's queue of 1000 entries with their
//!   messages, in order (a reconnect).
//!
//! Run with `cargo bench -p midge-benches --bench store`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fjall::{KeyspaceCreateOptions, PersistMode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const SESSIONS: u32 = 1000;
const FANOUT: u32 = 16;
const BATCH: u64 = 100;
const SCAN_LEN: u64 = 1000;

const MESSAGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("messages");
const QUEUES: TableDefinition<'_, (u32, u64), u64> = TableDefinition::new("queues");

fn message_value(id: u64, refs: u32) -> Vec<u8> {
    // refs (4 B) + topic (24 B) + payload (64 B)
    let mut v = Vec::with_capacity(92);
    v.extend_from_slice(&refs.to_be_bytes());
    v.extend_from_slice(format!("sensors/{:08}/temp!!!", id % 100_000).as_bytes());
    v.resize(28, b'_');
    v.extend((0..64u8).map(|i| i ^ (id as u8)));
    v
}

fn queue_key(session: u32, seq: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&session.to_be_bytes());
    k[4..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The queues message `id` goes to.
fn targets(id: u64) -> impl Iterator<Item = u32> {
    (0..FANOUT).map(move |i| ((id as u32).wrapping_mul(7).wrapping_add(i * 61)) % SESSIONS)
}

/// Per-session next sequence numbers, shared by both engines' workloads.
struct Seqs(Vec<u64>);

impl Seqs {
    fn new() -> Self {
        Self(vec![0; SESSIONS as usize])
    }
    fn next(&mut self, s: u32) -> u64 {
        let n = self.0[s as usize];
        self.0[s as usize] = n + 1;
        n
    }
}

// ---------------------------------------------------------------- redb

struct Redb {
    db: redb::Database,
    _dir: tempfile::TempDir,
    next_id: u64,
    seqs: Seqs,
}

impl Redb {
    fn new() -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(MESSAGES).unwrap();
        tx.open_table(QUEUES).unwrap();
        tx.commit().unwrap();
        Self {
            db,
            _dir: dir,
            next_id: 0,
            seqs: Seqs::new(),
        }
    }

    fn append_batch(&mut self) {
        let tx = self.db.begin_write().unwrap();
        {
            let mut m = tx.open_table(MESSAGES).unwrap();
            let mut q = tx.open_table(QUEUES).unwrap();
            for _ in 0..BATCH {
                let id = self.next_id;
                self.next_id += 1;
                m.insert(id, message_value(id, FANOUT).as_slice()).unwrap();
                for s in targets(id) {
                    q.insert((s, self.seqs.next(s)), id).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }

    /// Acknowledges the oldest entry of `BATCH` sessions in turn.
    fn ack_batch(&mut self, first_session: u32) {
        let tx = self.db.begin_write().unwrap();
        {
            let mut m = tx.open_table(MESSAGES).unwrap();
            let mut q = tx.open_table(QUEUES).unwrap();
            for i in 0..BATCH as u32 {
                let s = (first_session + i) % SESSIONS;
                let first = match q.range((s, 0)..(s + 1, 0)).unwrap().next() {
                    Some(Ok((k, v))) => Some((k.value(), v.value())),
                    _ => None,
                };
                let Some((key, id)) = first else { continue };
                q.remove(key).unwrap();
                let value = m.get(id).unwrap().map(|g| g.value().to_vec());
                if let Some(mut value) = value {
                    let refs = u32::from_be_bytes(value[..4].try_into().unwrap()) - 1;
                    if refs == 0 {
                        m.remove(id).unwrap();
                    } else {
                        value[..4].copy_from_slice(&refs.to_be_bytes());
                        m.insert(id, value.as_slice()).unwrap();
                    }
                }
            }
        }
        tx.commit().unwrap();
    }

    fn scan(&self, s: u32) -> usize {
        let tx = self.db.begin_read().unwrap();
        let m = tx.open_table(MESSAGES).unwrap();
        let q = tx.open_table(QUEUES).unwrap();
        let mut n = 0;
        for e in q.range((s, 0)..(s + 1, 0)).unwrap() {
            let (_, id) = e.unwrap();
            let msg = m.get(id.value()).unwrap().unwrap();
            n += msg.value().len();
        }
        n
    }
}

// ---------------------------------------------------------------- fjall

struct Fjall {
    db: fjall::Database,
    messages: fjall::Keyspace,
    queues: fjall::Keyspace,
    _dir: tempfile::TempDir,
    next_id: u64,
    seqs: Seqs,
}

impl Fjall {
    fn new() -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let messages = db
            .keyspace("messages", KeyspaceCreateOptions::default)
            .unwrap();
        let queues = db
            .keyspace("queues", KeyspaceCreateOptions::default)
            .unwrap();
        Self {
            db,
            messages,
            queues,
            _dir: dir,
            next_id: 0,
            seqs: Seqs::new(),
        }
    }

    fn append_batch(&mut self) {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        for _ in 0..BATCH {
            let id = self.next_id;
            self.next_id += 1;
            b.insert(&self.messages, id.to_be_bytes(), message_value(id, FANOUT));
            for s in targets(id) {
                b.insert(
                    &self.queues,
                    queue_key(s, self.seqs.next(s)),
                    id.to_be_bytes(),
                );
            }
        }
        b.commit().unwrap();
    }

    fn ack_batch(&mut self, first_session: u32) {
        // fjall's batch does not read its own writes: reference counts
        // changed twice in one batch are tracked here.
        let mut pending: std::collections::HashMap<u64, Vec<u8>> = Default::default();
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        for i in 0..BATCH as u32 {
            let s = (first_session + i) % SESSIONS;
            let Some(first) = self.queues.prefix(s.to_be_bytes()).next() else {
                continue;
            };
            let (k, v) = first.into_inner().unwrap();
            let id = u64::from_be_bytes(v.as_ref().try_into().unwrap());
            b.remove(&self.queues, k);
            let value = match pending.remove(&id) {
                Some(v) => Some(v),
                None => self
                    .messages
                    .get(id.to_be_bytes())
                    .unwrap()
                    .map(|v| v.to_vec()),
            };
            if let Some(mut value) = value {
                let refs = u32::from_be_bytes(value[..4].try_into().unwrap()) - 1;
                value[..4].copy_from_slice(&refs.to_be_bytes());
                pending.insert(id, value);
            }
        }
        for (id, value) in pending {
            if value[..4] == [0, 0, 0, 0] {
                b.remove(&self.messages, id.to_be_bytes());
            } else {
                b.insert(&self.messages, id.to_be_bytes(), value);
            }
        }
        b.commit().unwrap();
    }

    fn scan(&self, s: u32) -> usize {
        let mut n = 0;
        for e in self.queues.prefix(s.to_be_bytes()) {
            let v = e.value().unwrap();
            let msg = self.messages.get(&v).unwrap().unwrap();
            n += msg.len();
        }
        n
    }
}

// ---------------------------------------------------------------- benches

/// Fills so that session 0 holds `SCAN_LEN` entries (and every other one
/// about as many): 1000 sessions x 1000 entries / 16 per message.
fn fill_batches() -> u64 {
    SCAN_LEN * u64::from(SESSIONS) / u64::from(FANOUT) / BATCH
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_append_fanout");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    let mut r = Redb::new();
    g.bench_function("redb", |b| b.iter(|| r.append_batch()));
    let mut f = Fjall::new();
    g.bench_function("fjall", |b| b.iter(|| f.append_batch()));
    g.finish();
    drop((r, f));

    let mut g = c.benchmark_group("store_ack_delete");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    g.bench_function("redb", |b| {
        b.iter_custom(|iters| {
            let mut r = Redb::new();
            for _ in 0..iters.div_ceil(FANOUT as u64) + 1 {
                r.append_batch();
            }
            let start = Instant::now();
            for i in 0..iters {
                r.ack_batch((i * BATCH) as u32 % SESSIONS);
            }
            start.elapsed()
        });
    });
    g.bench_function("fjall", |b| {
        b.iter_custom(|iters| {
            let mut f = Fjall::new();
            for _ in 0..iters.div_ceil(FANOUT as u64) + 1 {
                f.append_batch();
            }
            let start = Instant::now();
            for i in 0..iters {
                f.ack_batch((i * BATCH) as u32 % SESSIONS);
            }
            start.elapsed()
        });
    });
    g.finish();

    let mut g = c.benchmark_group("store_scan_queue");
    g.throughput(Throughput::Elements(SCAN_LEN));
    let mut r = Redb::new();
    let mut f = Fjall::new();
    for _ in 0..fill_batches() {
        r.append_batch();
        f.append_batch();
    }
    assert_eq!(r.scan(0), f.scan(0));
    g.bench_function("redb", |b| b.iter(|| black_box(r.scan(black_box(0)))));
    g.bench_function("fjall", |b| b.iter(|| black_box(f.scan(black_box(0)))));
    g.finish();
    let _ = BatchSize::SmallInput;
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
