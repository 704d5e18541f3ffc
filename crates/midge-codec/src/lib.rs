//! MQTT 3.1.1 / 3.1 wire codec (work in progress).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
