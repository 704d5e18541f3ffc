//! The server suite on smol, in real time (keep alive 1 s, connect timeout
//! 2 s), on the process-wide executor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub
)]

mod suite;

use midge_smol::{Runtime, SmolRuntime};

macro_rules! on_smol {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                smol::block_on(suite::$name(SmolRuntime::current()));
            }
        )*
    };
}

on_smol!(
    mqtt_3_2_0_1_connect_is_answered_with_connack,
    mqtt_3_3_4_1_qos_0_1_2_delivered_across_shards,
    mqtt_3_3_1_6_retained_message_goes_to_new_subscriber,
    mqtt_3_1_2_8_will_published_on_abrupt_close,
    mqtt_3_14_4_3_no_will_after_disconnect,
    mqtt_3_1_2_5_persistent_session_resumes_with_queued_messages,
    mqtt_3_1_4_2_takeover_closes_the_earlier_connection,
    mqtt_3_1_2_24_keep_alive_expiry_closes,
    ipv6_listener_serves_clients,
    mqtt_4_8_0_1_malformed_packet_closes_and_others_are_served,
    mqtt_3_1_0_1_first_packet_not_connect_closes,
    oversized_remaining_length_closes_at_once,
    slowloris_is_closed_by_the_connect_timeout,
    silent_sockets_are_closed_by_the_connect_timeout,
    connection_cap_closes_extra_sockets,
    graceful_shutdown_closes_clients_without_wills,
    slow_subscriber_pauses_publisher_and_loses_nothing,
    mqtt_4_3_2_2_puback_after_routing_with_ack_after_route,
    abandoned_session_expires_on_the_shard_timer,
    mqtt_3_2_2_5_auth_hook_refuses_and_closes,
    client_that_never_reads_does_not_stall_others,
    mqtt_3_1_2_24_paused_publisher_is_not_a_silent_client,
    mqtt_3_1_4_2_takeover_under_load_loses_nothing,
);
