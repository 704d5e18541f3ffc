//! PUBACK (5.4.13): acknowledges a QoS 1 PUBLISH, or rejects any PUBLISH. Body: TopicId, MsgId, ReturnCode.

crate::body::topic_ack_message! {
    /// PUBACK: a QoS 1 PUBLISH arrived, or a PUBLISH of any QoS was refused.
    PubAck,
    PubAck,
    "The TopicId field: the TopicId field of the PUBLISH answered (for a short topic name, its two octets)."
}
