"""paho-mqtt over TLS, WebSocket and WebSocket over TLS: one client connects,
subscribes to a topic, publishes to it at QoS 1, waits for the message and
disconnects.

Arguments: --port, --transport (tcp or websockets), --path (WebSocket path),
--tls with --cafile and optionally --cert/--key. Prints one JSON object as
its last line: {"connected": bool, "rc": str, "messages": [payloads],
"error": str or null}. A refused TLS handshake is an outcome, not a crash:
it is reported in "error" with connected false.
"""

import argparse
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

WAIT = 10.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--prefix", default="interop")
    p.add_argument("--transport", default="tcp", choices=["tcp", "websockets"])
    p.add_argument("--path", default="/mqtt")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--cafile")
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()

    topic = f"{a.prefix}/tls-ws"
    state = {"connected": False, "rc": None, "messages": [], "error": None}
    event = threading.Event()
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{a.prefix}-paho",
        protocol=mqtt.MQTTv311,
        transport=a.transport,
    )
    if a.transport == "websockets":
        c.ws_set_options(path=a.path)
    if a.tls:
        c.tls_set(
            ca_certs=a.cafile,
            certfile=a.cert,
            keyfile=a.key,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def on_connect(client, userdata, flags, reason_code, properties):
        state["rc"] = str(reason_code)
        if not reason_code.is_failure:
            state["connected"] = True
            client.subscribe(topic, qos=1)
        event.set()

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        client.publish(topic, "over " + a.transport + (" tls" if a.tls else ""), qos=1)

    def on_message(client, userdata, msg):
        state["messages"].append(msg.payload.decode())
        event.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    try:
        c.connect(a.host, a.port, keepalive=30)
    except (ssl.SSLError, OSError) as e:
        state["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(state))
        return
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline and not state["messages"]:
            c.loop(timeout=0.1)
            if state["rc"] is not None and not state["connected"]:
                break
    except (ssl.SSLError, OSError) as e:
        state["error"] = f"{type(e).__name__}: {e}"
    if state["connected"]:
        c.disconnect()
        c.loop(timeout=0.2)
    print(json.dumps(state))


if __name__ == "__main__":
    sys.exit(main())
