"""Outbound hostnames when the DNS server never answers.

The host half runs in a network namespace of its own whose resolv.conf
(/etc/netns/NAME/resolv.conf, which `ip netns exec` puts in place of /etc/resolv.conf)
names a DNS server that takes every query and answers none: a UDP socket nobody reads
from but us, to count the lookups. Its options ask the resolver to wait far longer than
qproxy's own deadline, which must not rely on them.
"""

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

import harness
from harness import closed_within, echo, free_tcp_port, wait_until

ETC_NETNS = Path("/etc/netns")
SLOW_NAME = "slow.qproxy.test"
OLD_WORKERS = 4  # the resolver threads qproxy used to have, all of them
STUCK = 8
DEADLINE_S = 10  # proxy.c RESOLVE_TIMEOUT_MS


def _remove_stale_etc_netns():
    """/etc/netns entries of our namespaces whose pytest is gone (killed before its cleanup)."""
    try:
        names = os.listdir(ETC_NETNS)
    except FileNotFoundError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "qpe2e" and parts[1].isdigit() and \
                not os.path.exists(f"/proc/{parts[1]}"):
            shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


class BlackholeDns:
    """A namespace whose only DNS server, 127.0.0.1:53, reads queries and never answers."""

    def __init__(self):
        _remove_stale_etc_netns()
        self.made_etc_netns = not ETC_NETNS.exists()
        self.ns = harness.Netns.create()
        self.etc = ETC_NETNS / self.ns.name
        self.sock = None
        self.sources = set()
        try:
            self.etc.mkdir(parents=True)
            # timeout:30 attempts:5: the most glibc allows; musl allows more.
            (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\n"
                                                  "options timeout:30 attempts:5\n")
            self.sock = self.ns.sockets(1, socket.AF_INET, socket.SOCK_DGRAM)[0]
            self.sock.bind(("127.0.0.1", 53))
            self.sock.setblocking(False)
        except BaseException:
            self.close()
            raise

    def lookups(self):
        """How many lookups have asked so far: each asks from a socket of its own."""
        while True:
            try:
                data, src = self.sock.recvfrom(4096)
            except BlockingIOError:
                return len(self.sources)
            if SLOW_NAME.split(".")[0].encode() in data:
                self.sources.add(src)

    def close(self):
        if self.sock is not None:
            self.sock.close()
        shutil.rmtree(self.etc, ignore_errors=True)
        if self.made_etc_netns:
            try:
                ETC_NETNS.rmdir()
            except OSError:
                pass
        self.ns.delete()


@pytest.fixture
def blackhole():
    b = BlackholeDns()
    try:
        yield b
    finally:
        b.close()


@pytest.mark.timeout(90)
def test_stuck_lookups_hold_up_no_other_connection(blackhole, qp):
    # Requested before qp: its processes are stopped before this namespace goes.
    ns = blackhole.ns
    slow, literal, local = free_tcp_port(), free_tcp_port(), free_tcp_port()
    cfg = qp.config(outbound=[(SLOW_NAME, 9001, slow), ("127.0.0.1", 9002, literal),
                              ("localhost", 9003, local)])
    for port in (literal, local):
        qp.procs.start("echo-server", [harness.PYTHON, str(harness.SERVERS), "echo", "127.0.0.1",
                                       str(port)], netns=ns).wait_tcp(port)
    host = qp.host(cfg, netns=ns)
    qp.enclave(cfg)

    stuck = [qp.netns.connect("127.0.0.1", slow) for _ in range(STUCK)]
    try:
        wait_until(lambda: blackhole.lookups() >= OLD_WORKERS, 10,
                   f"{OLD_WORKERS} lookups of {SLOW_NAME} at the DNS server", watch=[host])
        # Meanwhile an IP literal needs no lookup, and localhost is in /etc/hosts: both work.
        assert echo(lambda: qp.netns.connect("127.0.0.1", literal), b"literal") == b"literal"
        assert echo(lambda: qp.netns.connect("127.0.0.1", local), b"localhost") == b"localhost"
        # Every stuck lookup has a worker of its own.
        wait_until(lambda: blackhole.lookups() >= STUCK, 10,
                   f"{STUCK} lookups of {SLOW_NAME} at the DNS server at once", watch=[host])
        # The stuck ones end at qproxy's deadline, each saying which name and how long.
        for s in stuck:
            how, _ = closed_within(s, DEADLINE_S + 20)
            assert how is not None, "a client of the unresolvable name is still held"
    finally:
        for s in stuck:
            s.close()
    lines = re.findall(r"WARN  c\d+ outbound %s:%d: .* -> %s:%d: resolve: no answer within %d s"
                       % (re.escape(SLOW_NAME), slow, re.escape(SLOW_NAME), slow, DEADLINE_S),
                       host.stderr())
    assert len(lines) == STUCK, host.stderr()
    assert host.alive()
