//! PUBCOMP (5.4.14): last step of a QoS 2 exchange. Body: MsgId.

crate::body::msg_id_message! {
    /// PUBCOMP: the QoS 2 exchange is complete.
    PubComp, PubComp
}
