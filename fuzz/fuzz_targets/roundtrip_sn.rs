//! Structure-aware round trip: the fuzz input is read as field values, a
//! message is built from them, and a message that encodes must decode to
//! itself, in exactly `encoded_len` octets.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use midge_sn_codec::*;

/// Reads field values from the input; past its end every value is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn bytes(&mut self) -> Bytes {
        let len = usize::from(self.u8()).min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Bytes::copy_from_slice(head)
    }
    fn text(&mut self) -> Bytes {
        let raw = self.bytes();
        Bytes::from(String::from_utf8_lossy(&raw).into_owned())
    }
    fn qos(&mut self) -> QoS {
        match self.u8() % 3 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }
    fn code(&mut self) -> ReturnCode {
        match self.u8() % 4 {
            0 => ReturnCode::Accepted,
            1 => ReturnCode::Congestion,
            2 => ReturnCode::InvalidTopicId,
            _ => ReturnCode::NotSupported,
        }
    }
    fn topic_name(&mut self) -> TopicName {
        TopicName::new(self.text()).expect("lossy conversion gives UTF-8")
    }
    fn sub_topic(&mut self) -> SubscribeTopic {
        match self.u8() % 3 {
            0 => SubscribeTopic::Name(self.topic_name()),
            1 => SubscribeTopic::Predefined(TopicId(self.u16())),
            _ => SubscribeTopic::Short(self.u16().to_be_bytes()),
        }
    }
    fn will(&mut self) -> Option<WillTopicData> {
        self.bool().then(|| WillTopicData {
            qos: self.qos(),
            retain: self.bool(),
            topic: self.topic_name(),
        })
    }

    fn message(&mut self, allow_encapsulated: bool) -> Message {
        match self.u8() % 28 {
            0 => Advertise { gw_id: self.u8(), duration: self.u16() }.into(),
            1 => SearchGw { radius: self.u8() }.into(),
            2 => GwInfo { gw_id: self.u8(), gw_add: self.bytes() }.into(),
            3 => Connect {
                will: self.bool(),
                clean_session: self.bool(),
                duration: self.u16(),
                client_id: ClientId::new(self.text()).expect("UTF-8"),
            }
            .into(),
            4 => ConnAck { return_code: self.code() }.into(),
            5 => WillTopicReq.into(),
            6 => WillTopic(self.will()).into(),
            7 => WillMsgReq.into(),
            8 => WillMsg { will_msg: self.bytes() }.into(),
            9 => Register { topic_id: TopicId(self.u16()), msg_id: self.u16(), topic_name: self.topic_name() }.into(),
            10 => RegAck { topic_id: TopicId(self.u16()), msg_id: self.u16(), return_code: self.code() }.into(),
            11 => {
                let qos = match self.u8() % 4 {
                    0 => PublishQoS::AtMostOnce,
                    1 => PublishQoS::AtLeastOnce,
                    2 => PublishQoS::ExactlyOnce,
                    _ => PublishQoS::MinusOne,
                };
                let topic = match self.u8() % 3 {
                    0 => Topic::TopicId(TopicId(self.u16())),
                    1 => Topic::Predefined(TopicId(self.u16())),
                    _ => Topic::Short(self.u16().to_be_bytes()),
                };
                Publish { dup: self.bool(), qos, retain: self.bool(), topic, msg_id: self.u16(), data: self.bytes() }.into()
            }
            12 => PubAck { topic_id: TopicId(self.u16()), msg_id: self.u16(), return_code: self.code() }.into(),
            13 => PubComp { msg_id: self.u16() }.into(),
            14 => PubRec { msg_id: self.u16() }.into(),
            15 => PubRel { msg_id: self.u16() }.into(),
            16 => Subscribe { dup: self.bool(), qos: self.qos(), msg_id: self.u16(), topic: self.sub_topic() }.into(),
            17 => SubAck { qos: self.qos(), topic_id: TopicId(self.u16()), msg_id: self.u16(), return_code: self.code() }.into(),
            18 => Unsubscribe { msg_id: self.u16(), topic: self.sub_topic() }.into(),
            19 => UnsubAck { msg_id: self.u16() }.into(),
            20 => {
                let id = ClientId::new(self.text()).expect("UTF-8");
                PingReq { client_id: (!id.is_empty()).then_some(id) }.into()
            }
            21 => PingResp.into(),
            22 => Disconnect { duration: self.bool().then(|| self.u16()) }.into(),
            23 => WillTopicUpd(self.will()).into(),
            24 => WillTopicResp { return_code: self.code() }.into(),
            25 => WillMsgUpd { will_msg: self.bytes() }.into(),
            26 => WillMsgResp { return_code: self.code() }.into(),
            _ if allow_encapsulated => Encapsulated {
                radius: self.u8() % 4,
                node_id: self.bytes(),
                message: Box::new(self.message(false)),
            }
            .into(),
            _ => PingResp.into(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let message = Input(data).message(true);
    let mut out = Vec::new();
    if message.encode(&mut out).is_err() {
        // A rule the decoder enforces was broken (zero MsgId, empty topic
        // name, QoS -1 with a normal id, ...): nothing may have been written.
        assert!(out.is_empty(), "failed encode wrote {} octets", out.len());
        return;
    }
    assert_eq!(out.len(), message.encoded_len());
    let again = Message::decode(Bytes::from(out)).expect("encoded message decodes");
    assert_eq!(again, message);
});
