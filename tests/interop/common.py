"""Shared helpers for the interop scripts: paho-mqtt 2.x clients pumped from one
thread, with every wait bounded.

Each script takes `--host` and `--port` (and `--prefix`, a topic and client-id
prefix unique to the test run), drives one scenario against the broker there, and
prints one JSON object as its last stdout line. A wait that runs out raises
`Timeout`; the script then exits non-zero with the reason on stderr.
"""

import argparse
import json
import socket
import struct
import sys
import time

import paho.mqtt.client as mqtt

# Upper bound for any single wait in a scenario. Generous: CI machines are slow.
WAIT = 10.0


class Timeout(Exception):
    """A bounded wait ran out."""


def args(extra=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="interop")
    if extra:
        extra(parser)
    return parser.parse_args()


class Peer:
    """One paho client and what happened to it, pumped by `pump`."""

    def __init__(self, client_id, clean_session=True, will=None, keepalive=30):
        self.client_id = client_id
        self.keepalive = keepalive
        self.connected = False
        self.connacks = []  # session_present flags, one per CONNACK
        self.disconnects = 0
        self.messages = []  # dicts: topic, payload, qos, retain
        self.acked = set()  # mids whose publish completed (sent / PUBACK / PUBCOMP)
        self.subacks = {}  # mid -> granted QoS list
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if will is not None:
            topic, payload, qos, retain = will
            c.will_set(topic, payload, qos=qos, retain=retain)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        self.client = c

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            self.connected = True
        self.connacks.append(
            {"session_present": bool(flags.session_present), "rc": str(reason_code)}
        )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected = False
        self.disconnects += 1

    def _on_message(self, client, userdata, msg):
        self.messages.append(
            {
                "topic": msg.topic,
                "payload": msg.payload.decode("utf-8", "replace"),
                "qos": msg.qos,
                "retain": bool(msg.retain),
            }
        )

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.acked.add(mid)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subacks[mid] = [rc.value for rc in reason_codes]


def pump(peers, until, what, timeout=WAIT):
    """Runs every peer's network loop until `until()` is true or `timeout`."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what}")
        for p in peers:
            if p.client.socket() is not None:
                p.client.loop(timeout=0.02)
            else:
                time.sleep(0.02)


def connect(peer, host, port, others=()):
    peer.client.connect(host, port, keepalive=peer.keepalive)
    before = len(peer.connacks)
    pump([peer, *others], lambda: len(peer.connacks) > before, f"CONNACK for {peer.client_id}")
    if not peer.connected:
        raise Timeout(f"{peer.client_id} was refused: {peer.connacks[-1]}")


def subscribe(peer, topic, qos, others=()):
    result, mid = peer.client.subscribe(topic, qos)
    if result != mqtt.MQTT_ERR_SUCCESS:
        raise Timeout(f"subscribe {topic} failed to send: {result}")
    pump([peer, *others], lambda: mid in peer.subacks, f"SUBACK for {topic}")
    return peer.subacks[mid]


def publish(peer, topic, payload, qos, retain=False, others=()):
    """Publishes and waits for its completion (PUBACK/PUBCOMP for QoS 1/2)."""
    info = peer.client.publish(topic, payload, qos=qos, retain=retain)
    pump([peer, *others], lambda: info.mid in peer.acked, f"ack of {topic} qos {qos}")
    return info.mid


def wait_messages(peer, count, others=(), timeout=WAIT):
    pump([peer, *others], lambda: len(peer.messages) >= count, f"{count} messages", timeout)
    return peer.messages


def disconnect(peer, others=()):
    peer.client.disconnect()
    pump([peer, *others], lambda: not peer.connected, f"{peer.client_id} to disconnect")


def drop(peer):
    """Closes the peer's socket without a DISCONNECT, as a crash would."""
    sock = peer.client.socket()
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def raw_connect(host, port, client_id, keepalive, will_topic, will_payload, will_qos=1):
    """A hand-made MQTT 3.1.1 CONNECT with a will, over a plain socket; returns
    the socket once CONNACK (return code 0) has arrived."""

    def utf8(s):
        b = s.encode("utf-8")
        return struct.pack("!H", len(b)) + b

    flags = 0x02 | 0x04 | (will_qos << 3)  # clean session, will flag, will QoS
    variable = utf8("MQTT") + bytes([0x04, flags]) + struct.pack("!H", keepalive)
    payload = utf8(client_id) + utf8(will_topic) + struct.pack("!H", len(will_payload)) + will_payload
    body = variable + payload
    if len(body) > 127:
        raise ValueError("CONNECT too long for this helper")
    sock = socket.create_connection((host, port), timeout=WAIT)
    sock.sendall(bytes([0x10, len(body)]) + body)
    connack = b""
    while len(connack) < 4:
        chunk = sock.recv(4 - len(connack))
        if not chunk:
            raise Timeout("broker closed before CONNACK")
        connack += chunk
    if connack[0] != 0x20 or connack[3] != 0:
        raise Timeout(f"unexpected CONNACK {connack.hex()}")
    return sock


def main(scenario):
    """Runs `scenario()` and prints its result dict as JSON."""
    try:
        result = scenario()
    except Timeout as e:
        print(f"interop script failed: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result, sort_keys=True))
