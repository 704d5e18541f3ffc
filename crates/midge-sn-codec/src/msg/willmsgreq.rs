//! WILLMSGREQ (5.4.8): the gateway asks for the will message. Header only.

crate::body::empty_message! {
    /// WILLMSGREQ: the gateway asks the connecting client for its will message.
    WillMsgReq, WillMsgReq
}
