//! PUBREC (5.4.14): first answer in a QoS 2 exchange. Body: MsgId.

crate::body::msg_id_message! {
    /// PUBREC: the receiver of a QoS 2 PUBLISH has it.
    PubRec, PubRec
}
