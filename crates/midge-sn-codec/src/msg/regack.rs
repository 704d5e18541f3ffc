//! REGACK (5.4.11): the answer to REGISTER. Body: TopicId, MsgId, ReturnCode.

crate::body::topic_ack_message! {
    /// REGACK: the topic id to use, or why the registration failed.
    RegAck,
    RegAck,
    "The TopicId field: the id to use in PUBLISH messages for the registered name."
}
