//! WILLTOPICREQ (5.4.6): the gateway asks for the will topic. Header only.

crate::body::empty_message! {
    /// WILLTOPICREQ: the gateway asks the connecting client for its will topic.
    WillTopicReq, WillTopicReq
}
