//! The shared test certificates (`midge_testkit::pki`) and a raw MQTT
//! client over any stream (`mqtt`).
#![allow(dead_code, unused_imports)]

pub use midge_testkit::pki::*;

pub mod mqtt;
