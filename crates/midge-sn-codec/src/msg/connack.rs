//! CONNACK (5.4.5): the answer to CONNECT. Body: ReturnCode.

crate::body::return_code_message! {
    /// CONNACK: the connection is accepted, or why not.
    ConnAck, ConnAck
}
