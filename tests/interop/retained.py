"""Retained messages: a subscriber that arrives after a retained publish gets it
with the retain flag set; after the retained message is cleared (empty payload),
a new subscriber gets only a later live message, without the retain flag."""

from common import Peer, args, connect, disconnect, main, publish, subscribe, wait_messages


def scenario():
    a = args()
    topic = f"{a.prefix}/retained"
    pub = Peer(f"{a.prefix}-ret-pub")
    connect(pub, a.host, a.port)
    publish(pub, topic, "kept", 1, retain=True)

    late = Peer(f"{a.prefix}-ret-late")
    connect(late, a.host, a.port, others=[pub])
    subscribe(late, topic, 1, others=[pub])
    first = list(wait_messages(late, 1, others=[pub]))
    disconnect(late, others=[pub])

    # Clear it, then prove a new subscriber sees nothing retained: a retained
    # message would arrive before the live marker published after SUBACK.
    publish(pub, topic, b"", 1, retain=True)
    after = Peer(f"{a.prefix}-ret-after")
    connect(after, a.host, a.port, others=[pub])
    subscribe(after, topic, 1, others=[pub])
    publish(pub, topic, "live", 1, others=[after])
    second = list(wait_messages(after, 1, others=[pub]))
    return {"first_subscriber": first, "after_clear": second}


main(scenario)
