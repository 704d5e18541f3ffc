//! PINGRESP (5.4.20): the answer to PINGREQ. Header only.

crate::body::empty_message! {
    /// PINGRESP: "still alive", or, to a sleeping client that woke up, "nothing
    /// more is buffered for you".
    PingResp, PingResp
}
