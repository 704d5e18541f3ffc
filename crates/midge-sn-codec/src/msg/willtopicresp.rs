//! WILLTOPICRESP (5.4.24): the answer to WILLTOPICUPD. Body: ReturnCode.

crate::body::return_code_message! {
    /// WILLTOPICRESP: the will topic update is accepted, or why not.
    WillTopicResp, WillTopicResp
}
