//! Damaged databases: opening never fails, reports what it found, moves
//! the damaged database aside and carries on with what could be read.
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
use midge_broker::{SessionState, Store};
use midge_codec::{Filter, PacketId, Publish, QoS, QosPid, Topic};
use midge_store::{DiskStore, StoreError, FORMAT_VERSION};

fn publish(n: u32) -> Publish {
    Publish::new(
        Topic::new("t/x").unwrap(),
        QosPid::AtLeastOnce(PacketId::new(1).unwrap()),
        Bytes::from(format!("message {n}")),
    )
}

/// A store with a few of everything, committed and closed.
fn fill(path: &Path) {
    let mut s = DiskStore::open(path).unwrap().store;
    for n in 0..200u32 {
        let client = format!("client-{}", n % 10);
        s.save_subscription(&client, &Filter::new("t/#").unwrap(), QoS::AtLeastOnce)
            .unwrap();
        s.push_queued(&client, u64::from(n), u64::from(n), &publish(n))
            .unwrap();
    }
    s.save_retained(&publish(1)).unwrap();
    s.commit().unwrap();
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

/// Opens the damaged store and checks the promises: it opens, a reported
/// recovery names an existing moved-aside copy, and the store works
/// (write, commit, reopen, read back).
fn opens_and_works(path: &Path) -> Option<midge_store::Recovery> {
    let opened = DiskStore::open(path).expect("a damaged store must still open");
    if let Some(r) = &opened.recovery {
        assert!(r.moved_to.exists(), "{r:?}");
        assert_ne!(r.moved_to, path);
    }
    let mut s = opened.store;
    s.recover().unwrap();
    s.push_queued("after", 0, 1_000_000, &publish(7)).unwrap();
    s.commit().unwrap();
    drop(s);
    let again = DiskStore::open(path).unwrap();
    assert!(again.recovery.is_none(), "{:?}", again.recovery);
    let q = again.store.load_queue("after", None, 10).unwrap();
    assert_eq!(q.len(), 1);
    opened.recovery
}

#[test]
fn truncated_files_open_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path);
    for f in files(&path) {
        let len = fs::metadata(&f).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    }
    opens_and_works(&path);
}

#[test]
fn garbage_in_every_file_opens_reports_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path);
    for f in files(&path) {
        let len = fs::metadata(&f).unwrap().len();
        let mut file = fs::OpenOptions::new().write(true).open(&f).unwrap();
        for at in [0, len / 3, len / 2] {
            file.seek(SeekFrom::Start(at)).unwrap();
            file.write_all(&[0xA5; 64]).unwrap();
        }
    }
    let recovery = opens_and_works(&path);
    assert!(recovery.is_some(), "garbage everywhere went unnoticed");
}

#[test]
fn an_unknown_format_version_is_moved_aside_and_its_records_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path);
    {
        let db = fjall::Database::builder(&path).open().unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        meta.insert("format_version", (FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let r = opens_and_works(&path).expect("a foreign format must be reported");
    assert_eq!(
        r.error,
        StoreError::FormatVersion {
            found: Some(FORMAT_VERSION + 1)
        }
    );
    // 200 subscriptions collapse to 10 keys; 200 entries, 200 messages, 1 retained.
    assert_eq!(r.salvaged, 10 + 200 + 200 + 1);
    assert_eq!(r.lost, 0);
    let s = DiskStore::open(&path).unwrap().store;
    assert_eq!(s.load_queue("client-3", None, 100).unwrap().len(), 20);
}

#[test]
fn an_undecodable_record_is_reported_and_only_it_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path);
    {
        let mut s = DiskStore::open(&path).unwrap().store;
        let mut state = SessionState::default();
        state.inbound_qos2 = vec![PacketId::new(3).unwrap()];
        s.save_session_state("good", &state).unwrap();
        s.commit().unwrap();
    }
    {
        let db = fjall::Database::builder(&path).open().unwrap();
        let states = db
            .keyspace("states", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        // A state record cut short: a count of one inflight message and
        // nothing after it.
        states
            .insert([0u8, 3, b'b', b'a', b'd'], [0u8, 0, 0, 1])
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let r = opens_and_works(&path).expect("a bad record must be reported");
    assert!(matches!(r.error, StoreError::Corrupt(_)), "{r:?}");
    assert_eq!(r.lost, 1);
    let s = DiskStore::open(&path).unwrap().store;
    let recovered = s.recover().unwrap();
    let good = recovered
        .sessions
        .iter()
        .find(|x| x.client_id == "good")
        .unwrap();
    assert_eq!(good.state.inbound_qos2, vec![PacketId::new(3).unwrap()]);
    assert!(recovered.sessions.iter().all(|x| x.client_id != "bad"));
}

#[test]
fn a_store_in_use_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path);
    let first = DiskStore::open(&path).unwrap();
    assert!(first.recovery.is_none());
    assert_eq!(DiskStore::open(&path).unwrap_err(), StoreError::Locked);
    // Nothing was moved aside.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("store")]);
    assert_eq!(
        first.store.load_queue("client-1", None, 100).unwrap().len(),
        20
    );
}

#[test]
fn dump_of_a_damaged_store_shows_it_and_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path);
    {
        let db = fjall::Database::builder(&path).open().unwrap();
        let states = db
            .keyspace("states", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        states.insert([0u8, 3, b'b', b'a', b'd'], [9u8]).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let mut out = Vec::new();
    let err = DiskStore::dump_path(&path, &mut out).unwrap_err();
    assert!(matches!(err, StoreError::Engine(_)), "{err:?}");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("unreadable record"), "{text}");
    assert!(
        text.contains("\"client-3\" #13 -> message 13 qos 1"),
        "{text}"
    );
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "dump moved something");
    let missing = DiskStore::dump_path(dir.path().join("nothing"), &mut Vec::new());
    assert!(missing.is_err());
}
