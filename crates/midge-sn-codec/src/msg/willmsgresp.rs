//! WILLMSGRESP (5.4.25): the answer to WILLMSGUPD. Body: ReturnCode.

crate::body::return_code_message! {
    /// WILLMSGRESP: the will message update is accepted, or why not.
    WillMsgResp, WillMsgResp
}
