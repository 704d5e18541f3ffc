//! Unit tests of the gateway machine, driven datagram by datagram with a
//! scripted broker side (bytes decoded and answered with midge-codec).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;

#[test]
fn new_refuses_a_bad_config() {
    let mut c = GatewayConfig::new(1);
    c.max_clients = 0;
    assert_eq!(
        Gateway::<u8>::new(c, Instant::ZERO).err(),
        Some(ConfigError::ZeroLimit("max_clients"))
    );
}
