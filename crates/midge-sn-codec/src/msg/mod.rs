//! One module per message type, each with `decode` (from the octets after
//! MsgType), `encode` and `encoded_len` (of the whole message, header included).

pub(crate) mod advertise;
pub(crate) mod connack;
pub(crate) mod connect;
pub(crate) mod disconnect;
pub(crate) mod encapsulated;
pub(crate) mod gwinfo;
pub(crate) mod pingreq;
pub(crate) mod pingresp;
pub(crate) mod puback;
pub(crate) mod pubcomp;
pub(crate) mod publish;
pub(crate) mod pubrec;
pub(crate) mod pubrel;
pub(crate) mod regack;
pub(crate) mod register;
pub(crate) mod searchgw;
pub(crate) mod suback;
pub(crate) mod subscribe;
pub(crate) mod unsuback;
pub(crate) mod unsubscribe;
pub(crate) mod willmsg;
pub(crate) mod willmsgreq;
pub(crate) mod willmsgresp;
pub(crate) mod willmsgupd;
pub(crate) mod willtopic;
pub(crate) mod willtopicreq;
pub(crate) mod willtopicresp;
pub(crate) mod willtopicupd;
