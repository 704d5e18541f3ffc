//! Crash safety of the real `midged` with durable storage: the broker is
//! killed with SIGKILL at random points while QoS 1 and QoS 2 publishers
//! write into an offline persistent subscriber, restarted, and killed again;
//! at the end every message whose PUBACK or PUBCOMP a publisher received is
//! delivered, in order per publisher, QoS 2 ones exactly once; the
//! subscription and the last acknowledged retained message survive too. A
//! damaged store is moved aside at start-up, logged and counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod crash_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crash_support::{midged, temp_dir, Raw, WAIT};
use midge_codec::{Packet, QoS};

/// A small deterministic generator (seeded from the clock, printed).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a publisher got acknowledged: its sequence numbers, and the last
/// retained value.
#[derive(Debug, Default)]
struct Acked {
    seqs: Vec<u64>,
    next: u64,
    retained: Option<u64>,
}

/// Publishes `crash/NAME` messages numbered on from `acked.next` until the
/// broker goes away.
fn publisher(addr: SocketAddr, name: &'static str, qos: QoS, acked: Arc<Mutex<Acked>>) {
    let Ok((mut c, _)) = Raw::connect(addr, name, true) else {
        return;
    };
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        let seq = {
            let mut a = acked.lock().unwrap();
            let s = a.next;
            a.next += 1;
            s
        };
        let payload = seq.to_string();
        if c.publish(&format!("crash/{name}"), qos, payload.as_bytes(), false)
            .is_err()
        {
            return;
        }
        acked.lock().unwrap().seqs.push(seq);
        if seq % 10 == 0 {
            if c.publish(&format!("ret/{name}"), qos, payload.as_bytes(), true)
                .is_err()
            {
                return;
            }
            acked.lock().unwrap().retained = Some(seq);
        }
    }
}

#[test]
fn acknowledged_messages_survive_sigkill_in_order_and_qos2_once() {
    let dir = temp_dir("crash");
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        .into();
    let seed = seed | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    {
        let broker = midged(&dir);
        let (mut sub, _) = Raw::connect(broker.addr(), "crash-sub", false).unwrap();
        sub.subscribe("crash/#", QoS::ExactlyOnce);
        sub.send(&Packet::Disconnect).unwrap();
        // No pause before the kill: the SUBACK came after the commit.
    }
    let p1 = Arc::new(Mutex::new(Acked::default()));
    let p2 = Arc::new(Mutex::new(Acked::default()));
    for round in 0..4 {
        let broker = midged(&dir);
        let addr = broker.addr();
        let (a1, a2) = (Arc::clone(&p1), Arc::clone(&p2));
        let t1 = std::thread::spawn(move || publisher(addr, "p1", QoS::AtLeastOnce, a1));
        let t2 = std::thread::spawn(move || publisher(addr, "p2", QoS::ExactlyOnce, a2));
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        drop(broker); // SIGKILL
        t1.join().unwrap();
        t2.join().unwrap();
        eprintln!(
            "round {round}: acked p1 {} p2 {}",
            p1.lock().unwrap().seqs.len(),
            p2.lock().unwrap().seqs.len()
        );
    }
    let broker = midged(&dir);
    let (mut sub, present) = Raw::connect(broker.addr(), "crash-sub", false).unwrap();
    assert!(present, "the persistent session did not survive");
    let got = sub.drain(Duration::from_secs(2));
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in &got {
        let seq: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
        by.entry(p.topic.as_str().to_owned()).or_default().push(seq);
    }
    for (name, acked, exactly_once) in [("p1", &p1, false), ("p2", &p2, true)] {
        let acked = acked.lock().unwrap();
        assert!(!acked.seqs.is_empty(), "{name} got nothing acknowledged");
        let seen = by
            .get(&format!("crash/{name}"))
            .cloned()
            .unwrap_or_default();
        for w in seen.windows(2) {
            if exactly_once {
                assert!(
                    w[0] < w[1],
                    "{name}: {} then {} (order or duplicate)",
                    w[0],
                    w[1]
                );
            } else {
                assert!(w[0] <= w[1], "{name}: {} then {} (order)", w[0], w[1]);
            }
        }
        for s in &acked.seqs {
            assert!(seen.contains(s), "{name}: acknowledged message {s} lost");
        }
    }
    // The subscription survived too: a new message still reaches it.
    let (mut late, _) = Raw::connect(broker.addr(), "late-pub", true).unwrap();
    late.publish("crash/late", QoS::AtLeastOnce, b"7", false)
        .unwrap();
    let more = sub.drain(Duration::from_secs(1));
    assert!(more.iter().any(|p| p.topic.as_str() == "crash/late"));
    // Retained: at least the last acknowledged value (a later, unacknowledged
    // one may have been stored before the kill).
    let (mut reader, _) = Raw::connect(broker.addr(), "ret-reader", true).unwrap();
    reader.subscribe("ret/#", QoS::AtLeastOnce);
    let retained = reader.drain(Duration::from_secs(1));
    for (name, acked) in [("p1", &p1), ("p2", &p2)] {
        let Some(last) = acked.lock().unwrap().retained else {
            continue;
        };
        let value: u64 = retained
            .iter()
            .find(|p| p.topic.as_str() == format!("ret/{name}"))
            .map(|p| std::str::from_utf8(&p.payload).unwrap().parse().unwrap())
            .unwrap_or_else(|| panic!("retained ret/{name} lost"));
        assert!(
            value >= last,
            "retained ret/{name} went back from {last} to {value}"
        );
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_store_is_moved_aside_logged_and_counted() {
    let dir = temp_dir("torn");
    {
        let broker = midged(&dir);
        let (mut c, _) = Raw::connect(broker.addr(), "torn-sub", false).unwrap();
        c.subscribe("torn/#", QoS::AtLeastOnce);
        c.send(&Packet::Disconnect).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    // Tear every file of shard 0's store: keep the first half of each.
    let mut torn = 0;
    let mut stack = vec![dir.join("shard-0")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with("lock") {
                let data = std::fs::read(&path).unwrap();
                let mut garbage = data[..data.len() / 2].to_vec();
                garbage.extend_from_slice(b"\xff\x00torn");
                std::fs::write(&path, garbage).unwrap();
                torn += 1;
            }
        }
    }
    assert!(torn > 0);
    let broker = midged(&dir);
    broker
        .process()
        .stderr()
        .wait_for(WAIT, |l| l.contains("STORE DAMAGED"))
        .unwrap();
    let (mut c, _) = Raw::connect(broker.addr(), "sys-reader", true).unwrap();
    c.subscribe("$SYS/broker/store/recoveries", QoS::AtMostOnce);
    let got = c.drain(Duration::from_secs(1));
    let count: u64 = got
        .iter()
        .find(|p| p.topic.as_str() == "$SYS/broker/store/recoveries")
        .map(|p| std::str::from_utf8(&p.payload).unwrap().parse().unwrap())
        .expect("$SYS/broker/store/recoveries");
    assert!(count >= 1);
    // The broker serves.
    let (mut p, _) = Raw::connect(broker.addr(), "after-torn", true).unwrap();
    p.publish("x/y", QoS::AtLeastOnce, b"ok", false).unwrap();
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
