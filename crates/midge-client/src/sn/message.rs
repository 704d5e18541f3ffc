//! [`SnMessage`] and [`SnMessages`], the stream of what the gateway sends.

use bytes::Bytes;
use midge_session::sn::client::SnTopic;
use midge_sn_codec::PublishQoS;

/// An application message from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnMessage {
    /// Its topic: the name when the client knows it (registered, subscribed
    /// by name, or a configured pre-defined id), else the id or short name.
    pub topic: SnTopic,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it arrived with.
    pub qos: PublishQoS,
    /// Its retain flag.
    pub retain: bool,
}

impl SnMessage {
    /// The topic as text: the name, the two characters of a short name, or
    /// the pre-defined id in decimal.
    #[must_use]
    pub fn topic_text(&self) -> String {
        match &self.topic {
            SnTopic::Name(name) => name.clone(),
            SnTopic::Short(short) => String::from_utf8_lossy(short).into_owned(),
            SnTopic::Predefined(id) => id.to_string(),
        }
    }
}

/// The messages of one [`SnClient`](super::SnClient), in arrival order. Ends
/// (`None`) when the client's task has ended.
///
/// The machine has acknowledged a QoS 1/2 message by the time it is here:
/// MQTT-SN has no flow control beyond one message in flight per direction,
/// so this buffer is bounded instead
/// ([`SnConnectOptions::with_max_buffered_messages`](super::SnConnectOptions::with_max_buffered_messages)).
#[derive(Debug)]
pub struct SnMessages {
    pub(crate) rx: async_channel::Receiver<SnMessage>,
}

impl SnMessages {
    /// The next message; `None` once the client has stopped and every
    /// message was taken. Cancel-safe: a dropped call loses nothing.
    pub async fn recv(&mut self) -> Option<SnMessage> {
        self.rx.recv().await.ok()
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<SnMessage> {
        self.rx.try_recv().ok()
    }

    /// How many messages wait.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}
