"""The notify client alone, on real sockets: a path and an abstract
('@name') NOTIFY_SOCKET, one datagram per send, and the watchdog settings
systemd passes ($WATCHDOG_USEC, $WATCHDOG_PID)."""

import os
import socket

from edge_agent.deploy.sd_notify import Notifier, watchdog_interval


def _listen(address):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_a_path_socket_gets_one_datagram_per_send(tmp_path):
    path = str(tmp_path / "notify")
    with _listen(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.send(READY=1, STATUS="line one\nline two")
        assert sock.recv(4096) == b"READY=1\nSTATUS=line one line two"  # a newline would start a new assignment
        notifier.send(WATCHDOG=1)
        assert sock.recv(4096) == b"WATCHDOG=1"
        notifier.close()


def test_an_abstract_socket():
    name = "edge-agent-test-%d" % os.getpid()
    with _listen("\0" + name) as sock:
        Notifier({"NOTIFY_SOCKET": "@" + name}).send(READY=1)
        assert sock.recv(4096) == b"READY=1"


def test_not_under_systemd_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled and notifier.send(READY=1) is False
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled


def test_the_watchdog_is_ours_only_when_systemd_says_so():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None
