//! MQTT-SN 1.2 machines: the client ([`client`]) and the gateway core ([`gateway`]).

pub mod client;
pub mod gateway;
mod rng;
