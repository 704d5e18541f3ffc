//! UNSUBACK (5.4.18): the answer to UNSUBSCRIBE. Body: MsgId.

crate::body::msg_id_message! {
    /// UNSUBACK: the gateway has processed an UNSUBSCRIBE.
    UnsubAck, UnsubAck
}
