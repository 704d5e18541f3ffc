//! The `$SYS/broker/...` publisher: every
//! [`ServerOptions::sys_interval`](crate::ServerOptions::sys_interval) it
//! takes a [`MetricsSnapshot`](crate::MetricsSnapshot) and hands each
//! topic of [`MetricsSnapshot::sys_topics`](crate::MetricsSnapshot::sys_topics)
//! to a router shard as a retained QoS 0 message the broker publishes
//! itself (`Router::handle_internal_publish`), so the client `$SYS` rule
//! does not stop it and a late subscriber reads the latest values at once.
//! Who may read them is the `Auth` hook's decision on SUBSCRIBE.

use std::sync::Arc;

use bytes::Bytes;
use futures_lite::future;
use midge_codec::{Publish, QosPid, Topic};
use midge_runtime::{Duration, Runtime};

use crate::metrics;
use crate::stats::Shared;

/// Publishes at once, then every `interval`, until shutdown.
pub(crate) async fn run<R: Runtime>(rt: R, shared: Arc<Shared>, interval: Duration) {
    let shutdown = shared.shutdown_rx.clone();
    let mut next = rt.now();
    loop {
        let snapshot = metrics::collect(&shared).await;
        for (topic, payload) in snapshot.sys_topics() {
            let Ok(topic) = Topic::new(&topic) else {
                tracing::debug!(topic, "not a valid $SYS topic name");
                continue;
            };
            let mut publish = Publish::new(topic, QosPid::AtMostOnce, Bytes::from(payload));
            publish.retain = true;
            if !shared.metrics.publish(publish) {
                return;
            }
        }
        next = next.saturating_add(interval);
        let now = rt.now();
        if next < now {
            // Fell behind (a suspended machine, say): skip the missed ticks.
            next = now.saturating_add(interval);
        }
        let stop = future::or(
            async {
                rt.sleep_until(next).await;
                false
            },
            async {
                let _ = shutdown.recv().await;
                true
            },
        )
        .await;
        if stop {
            return;
        }
    }
}
