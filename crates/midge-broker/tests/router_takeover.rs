//! A proptest of the registry under random connects and closes for a few
//! client ids, driven as an adapter would, except that a `Close` may be
//! applied late (other connections may come and go meanwhile): decisions
//! only go to connections waiting for one, nothing goes to a closed
//! connection, once every `Close` is applied no connection is left waiting,
//! each client has at most one live connection, and the router's count of
//! connections matches the adapter's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, VecDeque};

use midge_broker::router::{Action, AllowAll, ConnId, ConnectRequest, MemoryStore, Router};
use midge_broker::{ResumeState, RouterConfig};
use midge_codec::{Filter, MqttString, PacketId, Publish, QoS, QosPid, SubscribeFilter, Topic};
use midge_time::Instant;
use proptest::prelude::*;

const T0: Instant = Instant::from_secs(1);
const IDS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Live,
    Closed,
}

#[derive(Debug, Clone)]
enum Op {
    Open(usize, bool),
    Drop(usize, bool),
    Publish(usize),
    /// Apply one of the `Close` actions held back.
    ApplyClose(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..IDS.len(), any::<bool>()).prop_map(|(i, c)| Op::Open(i, c)),
        2 => (0..8usize, any::<bool>()).prop_map(|(k, w)| Op::Drop(k, w)),
        2 => (0..8usize).prop_map(Op::Publish),
        2 => (0..8usize).prop_map(Op::ApplyClose),
    ]
}

struct Driver {
    router: Router<MemoryStore, AllowAll>,
    conns: BTreeMap<ConnId, (usize, State)>,
    /// Closes the adapter still has to forward.
    closing: VecDeque<ConnId>,
    /// `Close` actions not applied yet.
    held: Vec<ConnId>,
    next: u64,
}

impl Driver {
    fn settle(&mut self) -> Result<(), TestCaseError> {
        loop {
            while let Some(a) = self.router.poll_action() {
                match a {
                    Action::Accept { conn, .. } => {
                        let entry = self.conns.get_mut(&conn).unwrap();
                        prop_assert_eq!(entry.1, State::Waiting, "Accept for {:?}", conn);
                        entry.1 = State::Live;
                        // Every accepted connection subscribes to its own topic.
                        let f = vec![SubscribeFilter::new(
                            Filter::new(IDS[entry.0]).unwrap(),
                            QoS::AtLeastOnce,
                        )];
                        self.router
                            .handle_subscribe(T0, conn, PacketId::new(1).unwrap(), f);
                    }
                    Action::Refuse { conn, .. } => {
                        let entry = self.conns.get_mut(&conn).unwrap();
                        prop_assert_eq!(entry.1, State::Waiting);
                        self.closing.push_back(conn);
                    }
                    Action::Close { conn } => {
                        let entry = self.conns[&conn];
                        prop_assert_ne!(entry.1, State::Closed, "Close for closed {:?}", conn);
                        self.held.push(conn);
                    }
                    Action::Deliver { conn, .. } | Action::SubAck { conn, .. } => {
                        prop_assert_eq!(
                            self.conns[&conn].1,
                            State::Live,
                            "{:?} to a dead conn",
                            conn
                        );
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            let Some(conn) = self.closing.pop_front() else {
                return Ok(());
            };
            let entry = self.conns.get_mut(&conn).unwrap();
            if entry.1 != State::Closed {
                entry.1 = State::Closed;
                self.router
                    .handle_closed(T0, conn, true, ResumeState::default());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn registry_stays_consistent_under_takeovers(ops in proptest::collection::vec(op(), 1..80)) {
        let config = RouterConfig {
            max_connections: 4,
            ..RouterConfig::default()
        };
        let mut d = Driver {
            router: Router::new(config, MemoryStore::new(), AllowAll),
            conns: BTreeMap::new(),
            closing: VecDeque::new(),
            held: Vec::new(),
            next: 1,
        };
        for op in ops {
            match op {
                Op::Open(i, clean) => {
                    let conn = ConnId(d.next);
                    d.next += 1;
                    d.conns.insert(conn, (i, State::Waiting));
                    let req = ConnectRequest::new(MqttString::new(IDS[i]).unwrap(), clean);
                    d.router.handle_connect(T0, conn, req);
                }
                Op::Drop(k, _will) => {
                    let live: Vec<ConnId> = d
                        .conns
                        .iter()
                        .filter(|(_, (_, s))| *s != State::Closed)
                        .map(|(c, _)| *c)
                        .collect();
                    if let Some(&conn) = live.get(k % live.len().max(1)) {
                        d.closing.push_back(conn);
                    }
                }
                Op::ApplyClose(k) => {
                    if !d.held.is_empty() {
                        let conn = d.held.remove(k % d.held.len());
                        d.closing.push_back(conn);
                    }
                }
                Op::Publish(k) => {
                    let live: Vec<ConnId> = d
                        .conns
                        .iter()
                        .filter(|(_, (_, s))| *s == State::Live)
                        .map(|(c, _)| *c)
                        .collect();
                    if let Some(&conn) = live.get(k % live.len().max(1)) {
                        for id in IDS {
                            let p = Publish::new(
                                Topic::new(id).unwrap(),
                                QosPid::AtLeastOnce(PacketId::new(2).unwrap()),
                                &b"m"[..],
                            );
                            d.router.handle_publish(T0, conn, p);
                        }
                    }
                }
            }
            d.settle()?;
            if !d.held.is_empty() {
                continue;
            }
            let waiting = d.conns.values().filter(|(_, s)| *s == State::Waiting).count();
            prop_assert_eq!(waiting, 0, "a connection waits forever");
            let live = d.conns.values().filter(|(_, s)| *s == State::Live).count();
            prop_assert_eq!(d.router.connection_count(), live);
            for (i, id) in IDS.iter().enumerate() {
                let n = d.conns.values().filter(|(c, s)| *c == i && *s == State::Live).count();
                prop_assert!(n <= 1, "client {} has {} live connections", id, n);
            }
        }
        // In the end every close is applied, and nobody is left waiting.
        while !d.held.is_empty() {
            let conn = d.held.remove(0);
            d.closing.push_back(conn);
            d.settle()?;
        }
        let waiting = d.conns.values().filter(|(_, s)| *s == State::Waiting).count();
        prop_assert_eq!(waiting, 0, "a connection waits forever");
        let live = d.conns.values().filter(|(_, s)| *s == State::Live).count();
        prop_assert_eq!(d.router.connection_count(), live);
    }
}
