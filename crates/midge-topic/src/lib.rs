//! MQTT topic names, filters and the subscription index (work in progress).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
