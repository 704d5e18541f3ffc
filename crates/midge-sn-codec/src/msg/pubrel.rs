//! PUBREL (5.4.14): second step of a QoS 2 exchange. Body: MsgId.

crate::body::msg_id_message! {
    /// PUBREL: the sender of a QoS 2 PUBLISH releases it.
    PubRel, PubRel
}
