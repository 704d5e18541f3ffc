//! The router with a store that models a crash: what was recorded but not
//! committed is lost. A "restart" is a new `Router` recovering from the
//! committed records only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use midge_broker::router::{Action, AllowAll, ConnId, ConnectRequest, MemoryStore, Router};
use midge_broker::{
    DeliverOutcome, Event, InflightMessage, MessageId, QueuedMessage, Recovered, ResumeState,
    RouterConfig, ServerConfig, ServerSession, SessionState, Store,
};
use midge_codec::{
    Encode, Filter, MqttString, PacketId, PubRel, Publish, QoS, QosPid, SubscribeFilter, Topic,
};
use midge_time::Instant;

const T0: Instant = Instant::from_secs(10);

/// One recorded change, replayed into the durable copy at commit.
#[derive(Debug, Clone)]
enum Change {
    Sub(String, Filter, QoS),
    Unsub(String, Filter),
    State(String, SessionState),
    Push(String, u64, MessageId, Publish),
    Pop(String, u64),
    Gone(String),
    Retain(Publish),
    Unretain(String),
}

/// A store whose uncommitted changes a crash loses.
#[derive(Debug, Default, Clone)]
struct Crashable {
    live: MemoryStore,
    durable: MemoryStore,
    pending: Vec<Change>,
}

impl Crashable {
    /// What a restart finds.
    fn after_crash(&self) -> Self {
        Self {
            live: self.durable.clone(),
            durable: self.durable.clone(),
            pending: Vec::new(),
        }
    }
}

fn apply(s: &mut MemoryStore, c: &Change) {
    let _ = match c {
        Change::Sub(id, f, q) => s.save_subscription(id, f, *q),
        Change::Unsub(id, f) => s.remove_subscription(id, f),
        Change::State(id, st) => s.save_session_state(id, st),
        Change::Push(id, seq, m, p) => s.push_queued(id, *seq, *m, p),
        Change::Pop(id, seq) => s.remove_queued(id, *seq),
        Change::Gone(id) => s.remove_session(id),
        Change::Retain(p) => s.save_retained(p),
        Change::Unretain(t) => s.remove_retained(t),
    };
}

impl Crashable {
    fn change(&mut self, c: Change) -> Result<(), core::convert::Infallible> {
        apply(&mut self.live, &c);
        self.pending.push(c);
        Ok(())
    }
}

impl Store for Crashable {
    type Error = core::convert::Infallible;
    fn save_subscription(&mut self, id: &str, f: &Filter, q: QoS) -> Result<(), Self::Error> {
        self.change(Change::Sub(id.into(), f.clone(), q))
    }
    fn remove_subscription(&mut self, id: &str, f: &Filter) -> Result<(), Self::Error> {
        self.change(Change::Unsub(id.into(), f.clone()))
    }
    fn save_session_state(&mut self, id: &str, s: &SessionState) -> Result<(), Self::Error> {
        self.change(Change::State(id.into(), s.clone()))
    }
    fn push_queued(
        &mut self,
        id: &str,
        seq: u64,
        m: MessageId,
        p: &Publish,
    ) -> Result<(), Self::Error> {
        self.change(Change::Push(id.into(), seq, m, p.clone()))
    }
    fn remove_queued(&mut self, id: &str, seq: u64) -> Result<(), Self::Error> {
        self.change(Change::Pop(id.into(), seq))
    }
    fn load_queue(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, Self::Error> {
        self.live.load_queue(id, after, limit)
    }
    fn remove_session(&mut self, id: &str) -> Result<(), Self::Error> {
        self.change(Change::Gone(id.into()))
    }
    fn save_retained(&mut self, p: &Publish) -> Result<(), Self::Error> {
        self.change(Change::Retain(p.clone()))
    }
    fn remove_retained(&mut self, t: &str) -> Result<(), Self::Error> {
        self.change(Change::Unretain(t.into()))
    }
    fn commit(&mut self) -> Result<(), Self::Error> {
        for c in self.pending.drain(..) {
            apply(&mut self.durable, &c);
        }
        self.durable.commit()
    }
    fn recover(&self) -> Result<Recovered, Self::Error> {
        self.live.recover()
    }
}

type R = Router<Crashable, AllowAll>;

fn router(config: RouterConfig) -> R {
    Router::new(config, Crashable::default(), AllowAll)
}

/// The router a restart after a crash of `r` would run.
fn restart(r: &R, config: RouterConfig) -> R {
    let mut fresh = Router::new(config, r.store().after_crash(), AllowAll);
    fresh.recover(T0).unwrap();
    fresh
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn drain(r: &mut R) -> Vec<Action> {
    core::iter::from_fn(|| r.poll_action()).collect()
}

fn connect(r: &mut R, conn: u64, id: &str, clean: bool) -> (bool, ResumeState, Vec<Action>) {
    let req = ConnectRequest::new(MqttString::new(id).unwrap(), clean);
    r.handle_connect(T0, ConnId(conn), req);
    let mut actions = drain(r);
    match actions.remove(0) {
        Action::Accept {
            session_present,
            resume,
            ..
        } => (session_present, resume, actions),
        other => panic!("expected Accept, got {other:?}"),
    }
}

fn subscribe(r: &mut R, conn: u64, filter: &str, qos: QoS) {
    let f = vec![SubscribeFilter::new(Filter::new(filter).unwrap(), qos)];
    r.handle_subscribe(T0, ConnId(conn), pid(1), f);
    drain(r);
}

fn message(topic: &str, qos: QoS, body: &str) -> Publish {
    let qos_pid = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(9)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(9)),
    };
    Publish::new(
        Topic::new(topic).unwrap(),
        qos_pid,
        Bytes::from(body.to_string()),
    )
}

fn persistent_connect() -> midge_codec::Connect {
    let mut c = midge_codec::Connect::new(MqttString::new("p").unwrap(), 0);
    c.clean_session = false;
    c
}

fn bodies(ps: &[Publish]) -> Vec<String> {
    ps.iter()
        .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
        .collect()
}

fn delivered(actions: &[Action]) -> Vec<Publish> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver { publish, .. } => Some(publish.clone()),
            _ => None,
        })
        .collect()
}

/// A persistent subscriber `p` (conn 1) gone offline with inflight state,
/// and a publisher `pub` on conn 2.
fn offline_subscriber(config: RouterConfig) -> R {
    let mut r = router(config);
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, "t/#", QoS::ExactlyOnce);
    let mut sent = message("t/a", QoS::ExactlyOnce, "inflight");
    sent.qos_pid = QosPid::ExactlyOnce(pid(5));
    let state = ResumeState {
        inflight: vec![
            InflightMessage::Publish(sent),
            InflightMessage::PubRel(pid(6)),
        ],
        queued: vec![message("t/a", QoS::AtLeastOnce, "held")],
        inbound_qos2: vec![pid(7)],
        subscriptions: vec![Filter::new("t/#").unwrap()],
    };
    r.handle_closed(T0, ConnId(1), false, state);
    connect(&mut r, 2, "pub", true);
    r
}

#[test]
fn mqtt_4_4_0_1_queued_and_inflight_state_survives_a_restart() {
    let mut r = offline_subscriber(RouterConfig::default());
    for (i, q) in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce]
        .into_iter()
        .enumerate()
    {
        r.handle_publish(T0, ConnId(2), message("t/a", q, &format!("m{i}")));
    }
    assert!(r.commit().unwrap().is_some());
    let mut r = restart(&r, RouterConfig::default());
    assert_eq!(
        r.subscriptions("p"),
        vec![(Filter::new("t/#").unwrap(), QoS::ExactlyOnce)]
    );
    let (present, resume, _) = connect(&mut r, 3, "p", false);
    assert!(present);
    // The same packet ids come back, so the client's PUBREC/PUBCOMP match.
    match &resume.inflight[..] {
        [InflightMessage::Publish(p), InflightMessage::PubRel(rel)] => {
            assert_eq!(p.qos_pid, QosPid::ExactlyOnce(pid(5)));
            assert_eq!(*rel, pid(6));
        }
        other => panic!("inflight lost: {other:?}"),
    }
    assert_eq!(resume.inbound_qos2, vec![pid(7)]);
    assert_eq!(bodies(&resume.queued), ["held", "m0", "m1", "m2"]);
    let qos: Vec<QoS> = resume.queued.iter().map(Publish::qos).collect();
    assert_eq!(
        qos,
        [
            QoS::AtLeastOnce,
            QoS::AtLeastOnce,
            QoS::ExactlyOnce,
            QoS::AtLeastOnce
        ]
    );
}

#[test]
fn an_acknowledgement_waits_for_the_commit_that_holds_its_message() {
    let mut r = offline_subscriber(RouterConfig::default());
    r.commit().unwrap();
    assert_eq!(r.commit_ticket(), None);
    r.handle_publish(T0, ConnId(2), message("t/a", QoS::AtLeastOnce, "m"));
    let ticket = r
        .commit_ticket()
        .expect("the queued message waits for a commit");
    assert!(!r.is_committed(ticket));
    // A crash now loses it: the publisher must not have had its PUBACK.
    let mut lost = restart(&r, RouterConfig::default());
    let (_, resume, _) = connect(&mut lost, 3, "p", false);
    assert_eq!(bodies(&resume.queued), ["held"]);
    // Once committed, it survives.
    assert_eq!(r.commit().unwrap(), Some(ticket));
    assert!(r.is_committed(ticket));
    assert_eq!(r.commit().unwrap(), None);
    let mut kept = restart(&r, RouterConfig::default());
    let (_, resume, _) = connect(&mut kept, 3, "p", false);
    assert_eq!(bodies(&resume.queued), ["held", "m"]);
}

#[test]
fn a_message_for_many_offline_sessions_is_stored_once() {
    let mut r = router(RouterConfig::default());
    for i in 0..5u64 {
        let id = format!("s{i}");
        connect(&mut r, i, &id, false);
        subscribe(&mut r, i, "fan/+", QoS::AtLeastOnce);
        r.handle_closed(T0, ConnId(i), false, ResumeState::default());
    }
    connect(&mut r, 99, "pub", true);
    r.handle_publish(T0, ConnId(99), message("fan/x", QoS::ExactlyOnce, "one"));
    r.handle_publish(T0, ConnId(99), message("fan/y", QoS::AtLeastOnce, "two"));
    r.commit().unwrap();
    let store = &r.store().durable;
    assert_eq!(store.message_count(), 2);
    assert_eq!(store.queue_entry_count(), 10);
    for i in 0..5 {
        let q = store.queued(&format!("s{i}"));
        assert_eq!(bodies(&q), ["one", "two"]);
        // Each entry keeps its granted QoS.
        assert_eq!(q[0].qos(), QoS::AtLeastOnce);
    }
    // Resuming and checkpointing one session drops only its references.
    let (_, resume, _) = connect(&mut r, 0, "s0", false);
    assert_eq!(resume.queued.len(), 2);
    r.checkpoint(T0, ConnId(0), &ResumeState::default(), 0);
    r.commit().unwrap();
    assert_eq!(r.store().durable.message_count(), 2);
    assert_eq!(r.store().durable.queue_entry_count(), 8);
}

#[test]
fn offline_queue_keeps_a_bounded_share_in_memory_and_streams_the_rest_in_order() {
    let config = RouterConfig {
        offline_memory_messages: 4,
        ..RouterConfig::default()
    };
    let mut r = offline_subscriber(config.clone());
    for i in 0..30 {
        r.handle_publish(
            T0,
            ConnId(2),
            message("t/a", QoS::AtLeastOnce, &format!("m{i}")),
        );
    }
    assert_eq!(r.offline_len("p"), 2 + 1 + 30);
    // In memory: the two inflight, the held one and a share of 4.
    assert_eq!(r.offline_memory_len("p"), 2 + 1 + 4);
    assert_eq!(r.stats().spilled_messages, 26);
    r.commit().unwrap();
    // The restarted router also loads only the share.
    let mut r = restart(&r, config);
    assert_eq!(r.offline_len("p"), 2 + 1 + 30);
    assert_eq!(r.offline_memory_len("p"), 2 + 1 + 4);
    connect(&mut r, 2, "pub", true);
    let (_, resume, mut actions) = connect(&mut r, 3, "p", false);
    // The held message and the in-memory share come with the accept...
    assert_eq!(bodies(&resume.queued), ["held", "m0", "m1", "m2", "m3"]);
    let mut got = bodies(&resume.queued);
    // ...and the rest streams in chunks of at most 4 as deliveries are
    // reported, with a new message waiting behind them.
    let mut live_sent = false;
    for _round in 0..20 {
        let chunk = delivered(&actions);
        assert!(chunk.len() <= 4, "chunk of {}", chunk.len());
        if chunk.is_empty() {
            break;
        }
        got.extend(bodies(&chunk));
        for _ in &chunk {
            r.handle_delivery(T0, ConnId(3), None, DeliverOutcome::Sent, false);
        }
        if !live_sent {
            live_sent = true;
            r.handle_publish(T0, ConnId(2), message("t/a", QoS::AtLeastOnce, "live"));
        }
        actions = drain(&mut r);
    }
    let mut want = vec!["held".to_string()];
    want.extend((0..30).map(|i| format!("m{i}")));
    want.push("live".to_string());
    assert_eq!(got, want);
    assert_eq!(r.stats().streamed_messages, 27);
    // Now streaming is over: a new message goes straight out.
    r.handle_publish(T0, ConnId(2), message("t/a", QoS::AtLeastOnce, "direct"));
    assert_eq!(bodies(&delivered(&drain(&mut r))), ["direct"]);
}

#[test]
fn streaming_waits_while_the_subscriber_is_congested() {
    let config = RouterConfig {
        offline_memory_messages: 2,
        ..RouterConfig::default()
    };
    let mut r = offline_subscriber(config);
    for i in 0..6 {
        r.handle_publish(
            T0,
            ConnId(2),
            message("t/b", QoS::AtLeastOnce, &format!("m{i}")),
        );
    }
    let (_, _, actions) = connect(&mut r, 3, "p", false);
    let first = delivered(&actions);
    assert_eq!(bodies(&first), ["m2", "m3"]);
    r.handle_delivery(T0, ConnId(3), None, DeliverOutcome::Queued, false);
    r.handle_delivery(T0, ConnId(3), None, DeliverOutcome::Queued, true);
    assert!(
        delivered(&drain(&mut r)).is_empty(),
        "sent into a congested session"
    );
    r.handle_drained(T0, ConnId(3));
    assert_eq!(bodies(&delivered(&drain(&mut r))), ["m4", "m5"]);
}

#[test]
fn connected_session_state_survives_a_restart_after_a_checkpoint() {
    let config = RouterConfig {
        record_online: true,
        ..RouterConfig::default()
    };
    let mut r = router(config.clone());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, "t/#", QoS::ExactlyOnce);
    connect(&mut r, 2, "pub", true);
    r.handle_publish(T0, ConnId(2), message("t/a", QoS::ExactlyOnce, "online"));
    let out = delivered(&drain(&mut r));
    assert_eq!(bodies(&out), ["online"]);
    // Recorded with the delivery: committed, a crash keeps it.
    r.commit().unwrap();
    let mut crashed = restart(&r, config.clone());
    let (present, resume, _) = connect(&mut crashed, 3, "p", false);
    assert!(present);
    assert_eq!(bodies(&resume.queued), ["online"]);
    // A real session takes it; the client answers PUBREC, and an inbound
    // QoS 2 message of its own waits for PUBREL.
    let mut session = ServerSession::new(ServerConfig::default(), T0, 1);
    let mut wire = BytesMut::new();
    persistent_connect().encode(&mut wire).unwrap();
    session.handle_read(T0, &wire).unwrap();
    while session.poll_event().is_some() {}
    session.accept(T0, false, ResumeState::default()).unwrap();
    assert_eq!(session.deliver(T0, out[0].clone()), DeliverOutcome::Sent);
    let mut incoming = message("t/in", QoS::ExactlyOnce, "from client");
    incoming.qos_pid = QosPid::ExactlyOnce(pid(77));
    wire.clear();
    incoming.encode(&mut wire).unwrap();
    session.handle_read(T0, &wire).unwrap();
    let mut out_buf = BytesMut::new();
    while session.poll_transmit(T0, &mut out_buf) > 0 {}
    while session.poll_event().is_some() {}
    r.checkpoint(T0, ConnId(1), &session.resume_snapshot(), 1);
    r.commit().unwrap();
    // The checkpoint replaced the delivery record with the session's state.
    assert_eq!(r.store().durable.queue_entry_count(), 0);
    let mut crashed = restart(&r, config);
    let (_, resume, _) = connect(&mut crashed, 3, "p", false);
    assert!(resume.queued.is_empty());
    assert_eq!(resume.inbound_qos2, vec![pid(77)]);
    let [InflightMessage::Publish(p)] = &resume.inflight[..] else {
        panic!("inflight lost: {:?}", resume.inflight);
    };
    assert_eq!(p.payload, Bytes::from_static(b"online"));
    // A new session resumed with it answers the client's PUBREL with
    // PUBCOMP for the same id [MQTT-4.3.3-2].
    let mut again = ServerSession::new(ServerConfig::default(), T0, 2);
    wire.clear();
    persistent_connect().encode(&mut wire).unwrap();
    again.handle_read(T0, &wire).unwrap();
    while again.poll_event().is_some() {}
    again.accept(T0, true, resume).unwrap();
    let mut out_buf = BytesMut::new();
    while again.poll_transmit(T0, &mut out_buf) > 0 {}
    out_buf.clear();
    wire.clear();
    PubRel::new(pid(77)).encode(&mut wire).unwrap();
    again.handle_read(T0, &wire).unwrap();
    while again.poll_transmit(T0, &mut out_buf) > 0 {}
    assert_eq!(&out_buf[..], &[0x70, 0x02, 0x00, 77]);
    assert!(!matches!(again.poll_event(), Some(Event::Publish { .. })));
}

#[test]
fn a_checkpoint_keeps_the_records_of_deliveries_not_yet_applied() {
    let config = RouterConfig {
        record_online: true,
        ..RouterConfig::default()
    };
    let mut r = router(config.clone());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, "t", QoS::AtLeastOnce);
    connect(&mut r, 2, "pub", true);
    r.handle_publish(T0, ConnId(2), message("t", QoS::AtLeastOnce, "applied"));
    r.handle_publish(T0, ConnId(2), message("t", QoS::AtLeastOnce, "on its way"));
    assert_eq!(delivered(&drain(&mut r)).len(), 2);
    // The snapshot was taken when only the first delivery had reached the
    // session: it holds that one, and the second keeps its own record.
    let mut sent = message("t", QoS::AtLeastOnce, "applied");
    sent.qos_pid = QosPid::AtLeastOnce(pid(1));
    let snapshot = ResumeState {
        inflight: vec![InflightMessage::Publish(sent)],
        ..ResumeState::default()
    };
    r.checkpoint(T0, ConnId(1), &snapshot, 1);
    r.commit().unwrap();
    assert_eq!(r.store().durable.queue_entry_count(), 1);
    let mut crashed = restart(&r, config);
    let (_, resume, _) = connect(&mut crashed, 3, "p", false);
    assert_eq!(resume.inflight.len(), 1);
    assert_eq!(bodies(&resume.queued), ["on its way"]);
}
