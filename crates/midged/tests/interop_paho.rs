//! Interop: paho-mqtt 2.x clients (the scripts in `tests/interop/`) against
//! `midged` on a free loopback port. The scenarios and their checks live in
//! `midge_testkit::paho`, where they also pass against Mosquitto.
//!
//! Without python and paho-mqtt these tests print a SKIP line and pass; with
//! `MIDGE_REQUIRE_PEERS=1` (as `cargo xtask ci` runs them) they fail instead.
//! Every step is bounded in time; the broker is killed when a test ends.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

/// Runs one paho scenario against a fresh `midged`, or skips.
fn against_midged(scenario: fn(&Path, u16, &str) -> Result<Value>, prefix: &str) -> Result<()> {
    let Some(python) = midge_testkit::find_python()? else {
        return Ok(());
    };
    let broker = midge_testkit::Midged::start(Path::new(env!("CARGO_BIN_EXE_midged")), &[])?;
    let report = scenario(&python, broker.port(), prefix)?;
    println!("{prefix}: {report}");
    Ok(())
}

// covers: MQTT-4.3.1-1, MQTT-4.3.2-2
#[test]
fn mqtt_4_3_3_2_paho_qos_0_1_2_round_trip() -> Result<()> {
    against_midged(midge_testkit::paho::qos_round_trip, "paho-qos")
}

// covers: MQTT-3.3.1-5, MQTT-3.3.1-8, MQTT-3.3.1-11
#[test]
fn mqtt_3_3_1_6_paho_retained_reaches_late_subscriber_until_cleared() -> Result<()> {
    against_midged(midge_testkit::paho::retained, "paho-retained")
}

// covers: MQTT-3.1.2-10
#[test]
fn mqtt_3_1_2_8_paho_will_on_abrupt_close_not_on_disconnect() -> Result<()> {
    against_midged(midge_testkit::paho::will, "paho-will")
}

// covers: MQTT-3.1.2-5, MQTT-3.2.2-2, MQTT-3.2.2-3
#[test]
fn mqtt_3_1_2_4_paho_persistent_session_resumes_with_queued_messages() -> Result<()> {
    against_midged(midge_testkit::paho::session_resume, "paho-resume")
}

#[test]
fn mqtt_3_1_4_2_paho_same_client_id_takes_over() -> Result<()> {
    against_midged(midge_testkit::paho::takeover, "paho-takeover")
}

#[test]
fn mqtt_3_1_2_24_paho_silent_client_is_cut_off_and_its_will_published() -> Result<()> {
    against_midged(midge_testkit::paho::keep_alive_expiry, "paho-keepalive")
}
