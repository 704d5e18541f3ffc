#!/usr/bin/env bash
# Installs the MQTT peers the interop tests run against, if they are missing:
#   - the Mosquitto broker and its clients (Debian packages `mosquitto` and
#     `mosquitto-clients`), with any system mosquitto service stopped so that
#     nothing of ours ever depends on port 1883;
#   - a Python venv at target/peers/venv with a pinned paho-mqtt;
#   - in the same venv, a pinned mqtt-sn-12, the MQTT-SN 1.2 client nobody
#     here wrote that the SN interop tests drive (see below for why).
# Idempotent: a second run changes nothing and says so. Prints what it did and
# exits non-zero with a message naming what could not be installed.
#
# Usage: scripts/install-test-peers.sh            (from anywhere in the repo)
# Prints, as its last line, `MIDGE_PYTHON=<absolute path of the venv python>`.
set -euo pipefail

PAHO_VERSION="2.1.0"
# mqtt-sn-12 (Marco Ratto, MIT, pure Python, no dependencies) rather than
# `mqttsn` 0.0.4: it is maintained (1.0.9, 2025), speaks QoS -1/0/1/2,
# pre-defined ids, wills and sleep, and ships mqtt_sn_pub/mqtt_sn_sub tools
# with the flags of the C tools of the same names, which the tests run as
# `python -m mqttsn12.mqtt_sn_pub|sub`. `mqttsn` (2018, RSMB-era) is kept
# out: unmaintained and without command-line tools.
MQTTSN12_VERSION="1.0.9"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/peers/venv"

say() { printf 'install-test-peers: %s\n' "$*"; }
die() {
    printf 'install-test-peers: error: %s\n' "$*" >&2
    exit 1
}

# Root runs apt-get directly; anyone else needs sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found; install these by hand: $*"
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
            die "apt-get update failed"
        apt_updated=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" ||
        die "apt-get install $* failed"
}

# --- Mosquitto -------------------------------------------------------------

# Debian keeps the broker in /usr/sbin, which is not always on a user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

missing_mosquitto=0
for tool in mosquitto mosquitto_pub mosquitto_sub; do
    command -v "$tool" >/dev/null 2>&1 || missing_mosquitto=1
done
if [ "$missing_mosquitto" -eq 1 ]; then
    apt_install mosquitto mosquitto-clients
    for tool in mosquitto mosquitto_pub mosquitto_sub; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool still missing after apt-get install"
    done
    installed_mosquitto=1
else
    installed_mosquitto=0
    say "mosquitto, mosquitto_pub and mosquitto_sub already installed"
fi

# The Debian package may start a system broker on 1883. The tests start their
# own brokers on free ports; stop and disable the system one so it never
# answers in their place.
stop_system_mosquitto() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet mosquitto 2>/dev/null ||
            systemctl is-enabled --quiet mosquitto 2>/dev/null; then
            say "stopping and disabling the system mosquitto service (systemd)"
            as_root systemctl disable --now mosquitto >/dev/null 2>&1 ||
                say "warning: could not disable the mosquitto service"
        fi
    elif [ -x /etc/init.d/mosquitto ]; then
        if as_root /etc/init.d/mosquitto status >/dev/null 2>&1; then
            say "stopping the system mosquitto service (init.d)"
            as_root /etc/init.d/mosquitto stop >/dev/null 2>&1 ||
                say "warning: could not stop the mosquitto service"
        fi
        if [ "$installed_mosquitto" -eq 1 ] && command -v update-rc.d >/dev/null 2>&1; then
            as_root update-rc.d mosquitto disable >/dev/null 2>&1 || true
        fi
    fi
}
stop_system_mosquitto
say "mosquitto: $(command -v mosquitto) ($(mosquitto -h 2>/dev/null | head -n 1 || true))"

# --- Python and paho-mqtt --------------------------------------------------

py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c "import paho.mqtt, sys; sys.exit(paho.mqtt.__version__ != '$PAHO_VERSION')" 2>/dev/null; then
    say "paho-mqtt $PAHO_VERSION already in $venv"
else
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-venv
    fi
    if [ ! -x "$py" ]; then
        mkdir -p "$(dirname "$venv")"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            # Debian splits venv (and ensurepip) into python3-venv.
            rm -rf "$venv"
            apt_install python3-venv
            python3 -m venv "$venv" || die "python3 -m venv $venv failed"
        fi
        say "created venv $venv"
    fi
    say "pip install paho-mqtt==$PAHO_VERSION"
    "$py" -m pip install --disable-pip-version-check -q "paho-mqtt==$PAHO_VERSION" ||
        die "pip install paho-mqtt==$PAHO_VERSION failed"
    "$py" -c "import paho.mqtt" || die "paho-mqtt does not import after pip install"
fi

# --- mqtt-sn-12 (MQTT-SN client) ------------------------------------------

if "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('mqtt-sn-12') != '$MQTTSN12_VERSION')" 2>/dev/null; then
    say "mqtt-sn-12 $MQTTSN12_VERSION already in $venv"
else
    say "pip install mqtt-sn-12==$MQTTSN12_VERSION"
    "$py" -m pip install --disable-pip-version-check -q "mqtt-sn-12==$MQTTSN12_VERSION" ||
        die "pip install mqtt-sn-12==$MQTTSN12_VERSION failed"
    "$py" -c "import mqttsn12.mqtt_sn_pub, mqttsn12.mqtt_sn_sub" ||
        die "mqtt-sn-12 does not import after pip install"
fi

say "peers ready"
echo "MIDGE_PYTHON=$py"
