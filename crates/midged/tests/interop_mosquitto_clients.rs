//! Interop: `mosquitto_pub` and `mosquitto_sub` against `midged` on a free
//! loopback port. The scenarios and their checks live in
//! `midge_testkit::cli`, where they also pass against Mosquitto.
//!
//! Without the mosquitto clients these tests print a SKIP line and pass; with
//! `MIDGE_REQUIRE_PEERS=1` (as `cargo xtask ci` runs them) they fail instead.
//! Every step is bounded in time; every process is killed when a test ends.

use std::path::Path;

use anyhow::Result;
use midge_testkit::MosquittoClients;

/// Runs one mosquitto-client scenario against a fresh `midged`, or skips.
fn against_midged(
    scenario: fn(&MosquittoClients, u16, &str) -> Result<()>,
    prefix: &str,
) -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let broker = midge_testkit::Midged::start(Path::new(env!("CARGO_BIN_EXE_midged")), &[])?;
    scenario(&clients, broker.port(), prefix)
}

// covers: MQTT-4.3.1-1, MQTT-4.3.2-2, MQTT-4.3.3-2
#[test]
fn mqtt_3_8_4_6_mosquitto_clients_qos_levels_and_downgrade() -> Result<()> {
    against_midged(midge_testkit::cli::qos_levels, "mosq-qos")
}

// covers: MQTT-3.3.1-6, MQTT-3.3.1-9
#[test]
fn mqtt_3_3_1_8_mosquitto_clients_retained_flag_live_and_late() -> Result<()> {
    against_midged(midge_testkit::cli::retained, "mosq-retained")
}

#[test]
fn mqtt_3_1_2_8_mosquitto_sub_killed_publishes_its_will() -> Result<()> {
    against_midged(midge_testkit::cli::will, "mosq-will")
}

// covers: MQTT-3.1.2-4
#[test]
fn mqtt_3_1_2_5_mosquitto_sub_persistent_session_resume() -> Result<()> {
    against_midged(midge_testkit::cli::session_resume, "mosq-resume")
}
