//! Sharding: [`ShardMessage`], what one shard of the router tells another,
//! and [`shard_of`], the hash that gives every client id, retained topic and
//! share group its owner shard.

use alloc::string::String;
use alloc::vec::Vec;

use midge_codec::{Filter, Publish, QoS};

use super::ConnId;

/// A connection named across shards: the shard whose router knows it, and
/// the adapter's id for it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardConn {
    /// The shard that holds the connection.
    pub shard: u32,
    /// The connection.
    pub conn: ConnId,
}

/// The shard that owns `key` (a client id, a topic name, or a share group
/// as `group/filter`) among `shards` shards: FNV-1a over the bytes, so every
/// shard and every adapter computes the same answer without talking.
/// `shards` of 0 is taken as 1.
#[must_use]
pub fn shard_of(key: &str, shards: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let shards = u64::from(shards.max(1));
    // The remainder is below `shards`, which came from a u32.
    u32::try_from(hash % shards).unwrap_or(0)
}

/// What one shard sends another; drained with
/// [`Router::poll_shard_message`](crate::Router::poll_shard_message) and
/// handed to the addressee's
/// [`Router::handle_shard_message`](crate::Router::handle_shard_message).
/// Between two shards, messages must arrive in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardMessage {
    /// A client subscribed (or replaced a subscription): update the replica
    /// of the subscription index.
    Subscribed {
        /// The client, owned by the sender.
        client_id: String,
        /// The filter as the client sent it (`$share/...` included).
        filter: Filter,
        /// The granted QoS.
        qos: QoS,
    },
    /// A subscription is gone.
    Unsubscribed {
        /// The client.
        client_id: String,
        /// The filter as the client sent it.
        filter: Filter,
    },
    /// A share-group member connected or went away.
    Presence {
        /// The client.
        client_id: String,
        /// Whether it is connected now.
        online: bool,
    },
    /// Hand `publish` to these clients of the receiving shard, each at the
    /// given QoS, keeping `publish`'s RETAIN flag.
    Deliver {
        /// The message.
        publish: Publish,
        /// (client id, QoS to deliver at).
        targets: Vec<(String, QoS)>,
        /// The connection whose PUBLISH this is, when a client's publish
        /// (not a will, retained or redispatched message) caused it; the
        /// receiver answers congestion with [`ShardMessage::CongestedBy`].
        publisher: Option<ShardConn>,
    },
    /// The receiver owns the retained message of this topic: store, replace
    /// or delete it.
    Retain {
        /// The retained PUBLISH.
        publish: Publish,
    },
    /// A client made a subscription: send it the matching retained messages
    /// this shard owns.
    RetainedQuery {
        /// The subscriber.
        client_id: String,
        /// The plain topic filter.
        filter: String,
        /// The granted QoS.
        qos: QoS,
    },
    /// The receiver owns this share group: pick the member for `publish`.
    Shared {
        /// The group name.
        group: String,
        /// The group's topic filter.
        filter: String,
        /// The message, at the publisher's QoS.
        publish: Publish,
        /// A member that must not get it (it has just left with it unacknowledged).
        exclude: Option<String>,
        /// The connection whose PUBLISH this is, as in
        /// [`ShardMessage::Deliver`].
        publisher: Option<ShardConn>,
    },
    /// Back-pressure: `target`, on the sender's shard, is congested and was
    /// fed by `publisher`, a connection of the receiver: pause it
    /// ([`Action::PausePublisher`](crate::Action::PausePublisher)) until the
    /// matching [`ShardMessage::Drained`].
    CongestedBy {
        /// The receiver's publishing connection.
        publisher: ConnId,
        /// The congested target.
        target: ShardConn,
    },
    /// Back-pressure: `target` drained or closed, so it no longer holds
    /// `publisher` back; the receiver resumes it once nothing else does.
    Drained {
        /// The receiver's publishing connection.
        publisher: ConnId,
        /// The target that held it.
        target: ShardConn,
    },
}
