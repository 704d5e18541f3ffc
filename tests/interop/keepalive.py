"""Keep-alive expiry: a raw-socket client with keep alive 1 s and a will goes
silent after CONNACK with its socket open; the broker must close the connection
(it may wait up to one and a half keep-alive periods) and publish the will,
which a paho subscriber receives."""

import time

from common import WAIT, Peer, Timeout, args, connect, main, raw_connect, subscribe, wait_messages

KEEPALIVE = 1


def scenario():
    a = args()
    will_topic = f"{a.prefix}/keepalive/will"
    watcher = Peer(f"{a.prefix}-ka-watch")
    connect(watcher, a.host, a.port)
    subscribe(watcher, will_topic, 1)

    sock = raw_connect(a.host, a.port, f"{a.prefix}-ka-silent", KEEPALIVE, will_topic, b"silent-gone")
    silent_since = time.monotonic()
    # Say nothing; wait for the broker to close the socket.
    sock.settimeout(WAIT)
    closed_by_broker = False
    try:
        closed_by_broker = sock.recv(16) == b""
    except (TimeoutError, OSError):
        closed_by_broker = False
    closed_after = time.monotonic() - silent_since
    sock.close()
    if not closed_by_broker:
        raise Timeout(f"the broker did not close a silent connection within {WAIT}s")
    received = list(wait_messages(watcher, 1))
    return {
        "keepalive": KEEPALIVE,
        "closed_by_broker": closed_by_broker,
        "closed_after_seconds": round(closed_after, 3),
        "received": received,
    }


main(scenario)
