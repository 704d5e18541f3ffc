//! MQTT-SN 1.2 wire codec (work in progress).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
