"""Persistent session resume: a clean_session=False subscriber at QoS 1
disconnects; messages published meanwhile are delivered when it reconnects with
the same client id, and its CONNACK says the session was present."""

from common import Peer, args, connect, disconnect, main, publish, subscribe, wait_messages


def scenario():
    a = args()
    topic = f"{a.prefix}/resume"
    cid = f"{a.prefix}-resume-sub"
    sub = Peer(cid, clean_session=False)
    connect(sub, a.host, a.port)
    subscribe(sub, topic, 1)
    disconnect(sub)

    pub = Peer(f"{a.prefix}-resume-pub")
    connect(pub, a.host, a.port)
    for i in range(3):
        publish(pub, topic, f"offline-{i}", 1)

    again = Peer(cid, clean_session=False)
    connect(again, a.host, a.port, others=[pub])
    received = list(wait_messages(again, 3, others=[pub]))
    return {
        "first_connack": sub.connacks[0],
        "resumed_connack": again.connacks[-1],
        "received": received,
    }


main(scenario)
