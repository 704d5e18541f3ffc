//! `DiskStore` against the broker's `MemoryStore`: the same operation
//! sequences give the same observable contents, with the disk store closed
//! and reopened after every step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use bytes::Bytes;
use midge_broker::{InflightMessage, MemoryStore, SessionState, Store};
use midge_codec::{Filter, PacketId, Publish, QoS, QosPid, Topic};
use midge_store::DiskStore;
use proptest::prelude::*;

const CLIENTS: [&str; 3] = ["a", "ab", "sensor/ü"];
const FILTERS: [&str; 4] = ["t/#", "t/+/x", "$share/g/t", "plain"];
const TOPICS: [&str; 3] = ["t/1", "t/2/x", "other"];

fn pid(n: u16) -> PacketId {
    PacketId::new(n.max(1)).unwrap()
}

fn qos(n: u8) -> QoS {
    match n % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Message `id` of the pool: the same content every time.
fn message(id: u64) -> Publish {
    let topic = Topic::new(TOPICS[(id % 3) as usize]).unwrap();
    let payload = Bytes::from(format!(
        "payload {id} {}",
        "x".repeat((id % 5) as usize * 40)
    ));
    let mut p = Publish::new(topic, QosPid::AtLeastOnce(pid(1)), payload);
    p.retain = id % 4 == 0;
    p
}

fn with_qos(mut p: Publish, q: QoS) -> Publish {
    p.qos_pid = match q {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(1)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(1)),
    };
    p
}

#[derive(Debug, Clone)]
enum Op {
    SaveSub(usize, usize, u8),
    RemoveSub(usize, usize),
    SaveState(usize, Vec<(bool, u16)>, Vec<u64>, Vec<u16>),
    Push(usize, u64, u8),
    Remove(usize, usize),
    RemoveSession(usize),
    SaveRetained(u64, u8),
    RemoveRetained(usize),
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS.len();
    prop_oneof![
        (c.clone(), 0..FILTERS.len(), 0u8..3).prop_map(|(c, f, q)| Op::SaveSub(c, f, q)),
        (c.clone(), 0..FILTERS.len()).prop_map(|(c, f)| Op::RemoveSub(c, f)),
        (
            c.clone(),
            prop::collection::vec((any::<bool>(), 1u16..20), 0..4),
            prop::collection::vec(0u64..8, 0..3),
            prop::collection::vec(1u16..20, 0..3)
        )
            .prop_map(|(c, i, q, b)| Op::SaveState(c, i, q, b)),
        (c.clone(), 0u64..8, 0u8..3).prop_map(|(c, m, q)| Op::Push(c, m, q)),
        (c.clone(), 0usize..6).prop_map(|(c, i)| Op::Remove(c, i)),
        c.clone().prop_map(Op::RemoveSession),
        (0u64..8, 0u8..3).prop_map(|(m, q)| Op::SaveRetained(m, q)),
        (0..TOPICS.len()).prop_map(Op::RemoveRetained),
        Just(Op::Commit),
    ]
}

/// Applies `op` to a store; `seqs` is the next seq of each client.
fn apply<S: Store>(s: &mut S, op: &Op, seqs: &mut [u64; 3], queued: &mut [Vec<u64>; 3]) {
    match op {
        Op::SaveSub(c, f, q) => s
            .save_subscription(CLIENTS[*c], &Filter::new(FILTERS[*f]).unwrap(), qos(*q))
            .unwrap(),
        Op::RemoveSub(c, f) => s
            .remove_subscription(CLIENTS[*c], &Filter::new(FILTERS[*f]).unwrap())
            .unwrap(),
        Op::SaveState(c, inflight, held, inbound) => {
            let mut state = SessionState::default();
            state.inflight = inflight
                .iter()
                .map(|(publish, n)| {
                    if *publish {
                        let mut p = message(u64::from(*n));
                        p.dup = true;
                        p.qos_pid = QosPid::ExactlyOnce(pid(*n));
                        InflightMessage::Publish(p)
                    } else {
                        InflightMessage::PubRel(pid(*n))
                    }
                })
                .collect();
            state.queued = held.iter().map(|m| message(*m)).collect();
            state.inbound_qos2 = inbound.iter().map(|n| pid(*n)).collect();
            s.save_session_state(CLIENTS[*c], &state).unwrap();
        }
        Op::Push(c, m, q) => {
            let seq = seqs[*c];
            seqs[*c] += 1;
            queued[*c].push(seq);
            s.push_queued(CLIENTS[*c], seq, *m, &with_qos(message(*m), qos(*q)))
                .unwrap();
        }
        Op::Remove(c, i) => {
            if let Some(seq) = queued[*c].get(*i).copied() {
                queued[*c].remove(*i);
                s.remove_queued(CLIENTS[*c], seq).unwrap();
            } else {
                // Removing an absent entry is not an error.
                s.remove_queued(CLIENTS[*c], 1_000_000).unwrap();
            }
        }
        Op::RemoveSession(c) => {
            queued[*c].clear();
            s.remove_session(CLIENTS[*c]).unwrap();
        }
        Op::SaveRetained(m, q) => s.save_retained(&with_qos(message(*m), qos(*q))).unwrap(),
        Op::RemoveRetained(t) => s.remove_retained(TOPICS[*t]).unwrap(),
        Op::Commit => s.commit().unwrap(),
    }
}

fn assert_same(disk: &DiskStore, mem: &MemoryStore) {
    assert_eq!(disk.recover().unwrap(), mem.recover().unwrap());
    for c in CLIENTS {
        assert_eq!(
            disk.load_queue(c, None, usize::MAX).unwrap(),
            mem.load_queue(c, None, usize::MAX).unwrap()
        );
        for after in [0u64, 2, 5] {
            assert_eq!(
                disk.load_queue(c, Some(after), 2).unwrap(),
                mem.load_queue(c, Some(after), 2).unwrap()
            );
        }
    }
    assert_eq!(disk.message_count().unwrap(), mem.message_count());
    assert_eq!(disk.queue_entry_count().unwrap(), mem.queue_entry_count());
}

/// The model's view: the store and the test's own seq bookkeeping.
#[derive(Clone)]
struct Model {
    mem: MemoryStore,
    seqs: [u64; 3],
    queued: [Vec<u64>; 3],
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// After every step the disk store is closed and opened again: cleanly
    /// (everything recorded is kept) or as in a crash (`abandon`: what was
    /// recorded since the last commit is lost, all of it, and nothing
    /// committed is).
    #[test]
    fn disk_store_matches_memory_store_across_reopens_and_crashes(
        steps in prop::collection::vec((op(), prop::bool::weighted(0.3)), 1..25)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut disk = DiskStore::open(&path).unwrap().store;
        let (mut seqs_d, mut q_d) = ([0u64; 3], <[Vec<u64>; 3]>::default());
        let mut model = Model { mem: MemoryStore::new(), seqs: [0; 3], queued: Default::default() };
        let mut committed = model.clone();
        for (op, crash) in &steps {
            apply(&mut disk, op, &mut seqs_d, &mut q_d);
            apply(&mut model.mem, op, &mut model.seqs, &mut model.queued);
            if matches!(op, Op::Commit) {
                committed = model.clone();
            }
            assert_same(&disk, &model.mem);
            if *crash {
                disk.abandon();
                model = committed.clone();
                // The test's bookkeeping of seqs goes back too, but a seq
                // once used is not used again.
                q_d = model.queued.clone();
                for (d, m) in seqs_d.iter().zip(model.seqs.iter_mut()) {
                    *m = *d;
                }
            } else {
                drop(disk);
                committed = model.clone();
            }
            let opened = DiskStore::open(&path).unwrap();
            prop_assert!(opened.recovery.is_none(), "{:?}", opened.recovery);
            disk = opened.store;
            assert_same(&disk, &model.mem);
        }
    }
}

#[test]
fn a_message_queued_for_many_sessions_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = DiskStore::open(dir.path().join("s")).unwrap().store;
    let qos_of = [
        QoS::AtLeastOnce,
        QoS::ExactlyOnce,
        QoS::AtMostOnce,
        QoS::ExactlyOnce,
    ];
    for (c, q) in ["a", "b", "c", "d"].into_iter().zip(qos_of) {
        disk.push_queued(c, 0, 7, &with_qos(message(7), q)).unwrap();
    }
    disk.commit().unwrap();
    assert_eq!(disk.message_count().unwrap(), 1);
    assert_eq!(disk.queue_entry_count().unwrap(), 4);
    for c in ["a", "b", "c"] {
        disk.remove_queued(c, 0).unwrap();
    }
    assert_eq!(disk.message_count().unwrap(), 1);
    let q = disk.load_queue("d", None, 10).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].publish.payload, message(7).payload);
    assert_eq!(q[0].publish.qos(), QoS::ExactlyOnce);
    disk.remove_queued("d", 0).unwrap();
    assert_eq!(disk.message_count().unwrap(), 0);
}

#[test]
fn dump_shows_every_kind_of_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = DiskStore::open(dir.path().join("s")).unwrap().store;
    disk.save_subscription("dev-1", &Filter::new("t/#").unwrap(), QoS::ExactlyOnce)
        .unwrap();
    disk.push_queued("dev-1", 3, 9, &message(9)).unwrap();
    let mut state = SessionState::default();
    state.inflight = vec![InflightMessage::PubRel(pid(12))];
    state.inbound_qos2 = vec![pid(44)];
    disk.save_session_state("dev-1", &state).unwrap();
    disk.save_retained(&message(4)).unwrap();
    let mut out = Vec::new();
    disk.dump(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for needle in [
        "[meta]",
        "format_version",
        "\"dev-1\" \"t/#\" qos 2",
        "\"dev-1\" #3 -> message 9 qos 1",
        "message 9 refs 1 topic \"t/1\"",
        "pubrel 12",
        "inbound-qos2 [44]",
        "[retained]",
        "\"t/2/x\"",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}
