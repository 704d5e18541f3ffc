//! The MQTT-SN gateway's database: records round trip, survive a reopen,
//! are lost only when not committed, and damage is reported, moved aside
//! and salvaged record by record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use midge_session::sn::gateway::{
    BufferedMessage, ClientRecord, PersistOp, TopicRecord, WillRecord,
};
use midge_sn_codec::QoS;
use midge_store::{GatewayStore, StoreError, GATEWAY_FORMAT_VERSION};

fn record(n: u32) -> ClientRecord {
    ClientRecord {
        client_id: format!("sensor-{n:03}"),
        clean_session: n % 3 == 0,
        keep_alive: 30,
        sleep: (n % 2 == 0).then_some(600),
        will: (n % 4 == 0).then(|| WillRecord {
            topic: format!("s/{n}/status"),
            qos: QoS::AtLeastOnce,
            retain: true,
            message: Bytes::from_static(b"offline"),
        }),
        topics: (1..=3)
            .map(|id| TopicRecord {
                id,
                name: format!("s/{n}/t{id}"),
                known: id != 2,
                rejected: id == 3,
            })
            .collect(),
        buffered: (0..n % 5)
            .map(|m| BufferedMessage {
                topic: format!("s/{n}/cmd"),
                data: Bytes::from(format!("message {m}")),
                qos: QoS::ExactlyOnce,
                retain: m == 0,
            })
            .collect(),
    }
}

/// A store with 20 records, committed and closed.
fn fill(path: &Path) -> Vec<ClientRecord> {
    let mut s = GatewayStore::open(path).unwrap().store;
    let records: Vec<ClientRecord> = (0..20).map(record).collect();
    for r in &records {
        s.apply(&PersistOp::Put(r.clone())).unwrap();
    }
    s.commit().unwrap();
    records
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn records_round_trip_through_commit_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway");
    let records = fill(&path);
    let opened = GatewayStore::open(&path).unwrap();
    assert!(opened.recovery.is_none());
    assert_eq!(opened.records, records);

    // Replace one, delete one: the next open sees both changes.
    let mut s = opened.store;
    let mut changed = record(4);
    changed.buffered.clear();
    changed.sleep = None;
    s.apply(&PersistOp::Put(changed.clone())).unwrap();
    s.apply(&PersistOp::Delete("sensor-007".to_owned()))
        .unwrap();
    assert_eq!(s.pending(), 2);
    s.commit().unwrap();
    assert_eq!(s.pending(), 0);
    drop(s);
    let again = GatewayStore::open(&path).unwrap().records;
    assert_eq!(again.len(), 19);
    assert!(again.contains(&changed));
    assert!(again.iter().all(|r| r.client_id != "sensor-007"));
}

#[test]
fn uncommitted_changes_are_lost_as_in_a_crash_and_a_clean_close_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway");
    fill(&path);
    let mut s = GatewayStore::open(&path).unwrap().store;
    s.apply(&PersistOp::Delete("sensor-000".to_owned()))
        .unwrap();
    s.abandon();
    assert_eq!(GatewayStore::open(&path).unwrap().records.len(), 20);

    let mut s = GatewayStore::open(&path).unwrap().store;
    s.apply(&PersistOp::Delete("sensor-000".to_owned()))
        .unwrap();
    drop(s);
    assert_eq!(GatewayStore::open(&path).unwrap().records.len(), 19);
}

#[test]
fn a_store_in_use_is_refused_and_nothing_is_moved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway");
    fill(&path);
    let first = GatewayStore::open(&path).unwrap();
    assert_eq!(GatewayStore::open(&path).unwrap_err(), StoreError::Locked);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(first.records.len(), 20);
}

#[test]
fn an_undecodable_record_is_reported_and_only_it_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway");
    let records = fill(&path);
    {
        let db = fjall::Database::builder(&path).open().unwrap();
        let clients = db
            .keyspace("clients", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        // Flags, keep alive, sleep, then a topic count with no topics.
        clients
            .insert("bad", [0u8, 0, 30, 0, 0, 0, 0, 0, 1])
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let opened = GatewayStore::open(&path).unwrap();
    let r = opened.recovery.expect("a bad record must be reported");
    assert!(matches!(r.error, StoreError::Corrupt(_)), "{r:?}");
    assert!(r.moved_to.exists());
    assert_eq!((r.salvaged, r.lost), (20, 1));
    assert_eq!(opened.records, records);
    drop(opened.store);
    let again = GatewayStore::open(&path).unwrap();
    assert!(again.recovery.is_none());
    assert_eq!(again.records, records);
}

#[test]
fn an_unknown_format_version_is_moved_aside_and_its_records_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway");
    let records = fill(&path);
    {
        let db = fjall::Database::builder(&path).open().unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        meta.insert(
            "gateway_format_version",
            (GATEWAY_FORMAT_VERSION + 1).to_be_bytes(),
        )
        .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let opened = GatewayStore::open(&path).unwrap();
    let r = opened.recovery.expect("a foreign format must be reported");
    assert_eq!(
        r.error,
        StoreError::FormatVersion {
            found: Some(GATEWAY_FORMAT_VERSION + 1)
        }
    );
    assert_eq!(opened.records, records);
}

#[test]
fn garbage_in_every_file_still_opens_reports_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway");
    fill(&path);
    for f in files(&path) {
        let len = fs::metadata(&f).unwrap().len();
        let mut file = fs::OpenOptions::new().write(true).open(&f).unwrap();
        for at in [0, len / 3, len / 2] {
            file.seek(SeekFrom::Start(at)).unwrap();
            file.write_all(&[0xA5; 64]).unwrap();
        }
    }
    let opened = GatewayStore::open(&path).expect("a damaged store must still open");
    let r = opened.recovery.expect("garbage everywhere went unnoticed");
    assert!(r.moved_to.exists());
    // Whatever was salvaged decodes, and the fresh store works.
    assert_eq!(opened.records.len() as u64, r.salvaged);
    let mut s = opened.store;
    s.apply(&PersistOp::Put(record(99))).unwrap();
    s.commit().unwrap();
    drop(s);
    let again = GatewayStore::open(&path).unwrap();
    assert!(again.recovery.is_none());
    assert!(again.records.contains(&record(99)));
}
