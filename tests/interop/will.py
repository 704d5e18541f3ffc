"""Wills: a client whose connection drops without DISCONNECT has its will
published; a client that disconnects cleanly does not (a live marker published
afterwards arrives with no will before it)."""

from common import Peer, args, connect, disconnect, drop, main, publish, subscribe, wait_messages


def scenario():
    a = args()
    wills = f"{a.prefix}/will"
    watcher = Peer(f"{a.prefix}-will-watch")
    connect(watcher, a.host, a.port)
    subscribe(watcher, f"{wills}/#", 1)

    doomed = Peer(f"{a.prefix}-will-doomed", will=(f"{wills}/doomed", "doomed-gone", 1, False))
    connect(doomed, a.host, a.port, others=[watcher])
    drop(doomed)
    abrupt = list(wait_messages(watcher, 1))

    polite = Peer(f"{a.prefix}-will-polite", will=(f"{wills}/polite", "polite-gone", 1, False))
    connect(polite, a.host, a.port, others=[watcher])
    disconnect(polite, others=[watcher])
    marker = Peer(f"{a.prefix}-will-marker")
    connect(marker, a.host, a.port, others=[watcher])
    publish(marker, f"{wills}/marker", "marker", 1, others=[watcher])
    wait_messages(watcher, 2, others=[marker])
    return {"after_drop": abrupt, "all": watcher.messages}


main(scenario)
