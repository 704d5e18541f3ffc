"""Takeover: a second client connecting with the same client id makes the broker
close the first one's connection; the second stays connected and works."""

from common import Peer, args, connect, main, pump, publish, subscribe, wait_messages


def scenario():
    a = args()
    cid = f"{a.prefix}-takeover"
    topic = f"{a.prefix}/takeover"
    first = Peer(cid)
    connect(first, a.host, a.port)
    second = Peer(cid)
    connect(second, a.host, a.port, others=[first])
    pump([first, second], lambda: first.disconnects > 0, "the first client to be disconnected")
    subscribe(second, topic, 1)
    publish(second, topic, "still-here", 1)
    received = list(wait_messages(second, 1))
    return {
        "first_disconnected": first.disconnects > 0,
        "second_connected": second.connected,
        "second_received": received,
    }


main(scenario)
