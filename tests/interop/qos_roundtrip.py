"""QoS 0, 1 and 2 through the broker: a subscriber at QoS 2 gets one message per
level, each at the level it was published with, and the publisher's on_publish
fires for each (PUBACK for QoS 1, PUBCOMP for QoS 2)."""

from common import Peer, args, connect, main, publish, subscribe, wait_messages


def scenario():
    a = args()
    topic = f"{a.prefix}/qos"
    sub = Peer(f"{a.prefix}-qos-sub")
    pub = Peer(f"{a.prefix}-qos-pub")
    connect(sub, a.host, a.port)
    connect(pub, a.host, a.port, others=[sub])
    granted = subscribe(sub, f"{topic}/#", 2, others=[pub])
    acked = []
    for qos in (0, 1, 2):
        publish(pub, f"{topic}/{qos}", f"payload-{qos}", qos, others=[sub])
        acked.append(qos)
    received = wait_messages(sub, 3, others=[pub])
    return {"granted": granted, "acked": acked, "received": received}


main(scenario)
