//! The client suite on tokio. Tests that wait on keep alive run with a
//! paused clock, so they take no real time.

mod suite;

use midge_tokio::TokioRuntime;

macro_rules! on_tokio {
    ($flavour:meta => $($name:ident),* $(,)?) => {
        $(
            #[$flavour]
            async fn $name() {
                let rt = TokioRuntime::from_handle(tokio::runtime::Handle::current());
                suite::within(&rt, suite::$name(rt.clone())).await;
            }
        )*
    };
}

on_tokio!(tokio::test =>
    mqtt_3_2_2_2_connect_reports_session_present,
    connect_refused_with_each_code,
    tls_files_are_read_before_connecting,
    unreachable_broker_fails_connect,
    mqtt_3_3_1_2_publish_qos0_resolves_when_written,
    publish_qos1_resolves_at_puback,
    mqtt_4_3_3_1_publish_qos2_resolves_at_pubcomp,
    publish_errors_are_immediate,
    subscribe_granted_and_refused,
    unsubscribe_resolves_at_unsuback,
    messages_arrive_in_order_and_are_acked_when_taken,
    publish_from_message_loop_does_not_deadlock,
    for_each_callback_sees_every_message,
    qos0_over_the_buffer_limit_is_dropped_and_counted,
    flooding_broker_pauses_reading_until_the_app_catches_up,
    large_qos0_burst_is_written_in_full,
    qos0_backlog_is_bounded_by_max_queued,
    dropped_messages_stream_still_acknowledges,
    mqtt_4_3_2_2_taken_message_is_acked_before_disconnect,
    mqtt_4_3_2_2_taken_message_is_acked_before_a_later_publish,
    subscribe_while_reconnecting_completes_on_the_next_connection,
    mqtt_4_4_0_1_reconnect_resends_inflight_with_dup_and_resubscribes,
    reconnect_with_session_present_does_not_resubscribe,
    reconnect_retries_server_unavailable_but_not_bad_credentials,
    without_reconnect_a_lost_connection_ends_the_client,
    mqtt_3_14_4_1_disconnect_sends_disconnect_and_closes,
    dropping_every_handle_disconnects,
);

on_tokio!(tokio::test(start_paused = true) =>
    connect_times_out_without_connack,
    mqtt_3_1_2_23_idle_client_sends_pingreq,
    unanswered_pingreq_closes_and_reconnects,
);
