"""Connections never queue behind each other: 1000 at once, and a stalled one blocks nobody."""

import os
import select
import socket
import time

import pytest

from harness import free_tcp_port, recv_all, recv_exactly, wait_until

N = 1000
# The servers get enough descriptors for N connections. The qproxy halves get the usual
# default soft limit of 1024 under a high hard limit (as systemd gives a service): N relayed
# connections need two sockets each, so qproxy must raise its own soft limit.
SERVER_NOFILE = (8192, 8192)
QPROXY_NOFILE = (1024, 8192)


def setup_echo_rule(qp, direction):
    """Returns a function making n unconnected client sockets, the address to connect to,
    and the two qproxy halves."""
    if direction == "inbound":
        host_port = free_tcp_port()
        qp.server("echo", 6000, nofile=SERVER_NOFILE)
        cfg = qp.config(inbound=[(host_port, 6000, 9000)])
        enclave = qp.enclave(cfg, nofile=QPROXY_NOFILE)
        host = qp.host(cfg, nofile=QPROXY_NOFILE)
        return ((lambda n: [socket.socket() for _ in range(n)]), ("127.0.0.1", host_port),
                (host, enclave))
    port = free_tcp_port()
    qp.server("echo", port, in_netns=False, nofile=SERVER_NOFILE)
    cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
    host = qp.host(cfg, nofile=QPROXY_NOFILE)
    enclave = qp.enclave(cfg, nofile=QPROXY_NOFILE)
    return (lambda n: qp.netns.sockets(n)), ("127.0.0.1", port), (host, enclave)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_1000_concurrent_connections(qp, many_files, direction):
    make_sockets, addr, halves = setup_echo_rule(qp, direction)
    qp.wait_linked(halves[0])  # the control link holds an fd in each half
    baseline = {p.name: p.nfds() for p in halves}
    socks = make_sockets(N)
    try:
        t0 = time.monotonic()
        for s in socks:  # open them all first...
            s.settimeout(10)
            s.connect(addr)
        opened = time.monotonic() - t0
        msgs = [b"connection %04d " % i + os.urandom(32) for i in range(N)]
        for s, m in zip(socks, msgs):  # ...then every one has data in flight at once...
            s.sendall(m)
        for i, (s, m) in enumerate(zip(socks, msgs)):  # ...and every one answers.
            try:
                assert recv_exactly(s, len(m)) == m, f"connection {i} echoed wrong bytes"
            except socket.timeout:
                raise AssertionError(f"connection {i} of {N}: no echo within 10 s") from None
        for s in socks:
            s.shutdown(socket.SHUT_WR)
        for i, s in enumerate(socks):
            try:
                assert recv_all(s) == b"", f"connection {i}: data after the echo"
            except socket.timeout:
                raise AssertionError(f"connection {i} of {N}: no EOF within 10 s") from None
        print(f"{N} connections opened in {opened:.2f} s, all done in {time.monotonic() - t0:.2f} s")
    finally:
        for s in socks:
            s.close()
    # Every relayed connection is freed: each half is back to the descriptors it started with.
    for p in halves:
        assert p.alive(), f"{p.name} died"
        wait_until(lambda: p.nfds() <= baseline[p.name], 5,
                   f"{p.name} to close its {N} connections' descriptors "
                   f"(had {baseline[p.name]} before, {p.nfds()} now)")


def fill_until_stalled(sock, limit=512 << 20, quiet=0.5, max_time=20):
    """Write into sock until it has not been writable for `quiet` seconds: the whole path
    behind it (proxy buffers, server) has stopped reading. Returns bytes written."""
    sock.setblocking(False)
    chunk = b"x" * (1 << 16)
    total = 0
    deadline = time.monotonic() + max_time
    while total < limit and time.monotonic() < deadline:
        try:
            total += sock.send(chunk)
            continue
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [sock], [], quiet)
        if not w:
            return total
    raise AssertionError(f"connection never stalled after {total} bytes: nothing pushes back")


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_stalled_connection_blocks_nobody(qp, direction):
    # Connection A writes but never reads: its echo backs up until every buffer on the
    # way is full. A proxy that blocks on a write would then serve nobody else.
    make_sockets, addr, _ = setup_echo_rule(qp, direction)
    a, b = make_sockets(2)
    try:
        a.settimeout(10)
        a.connect(addr)
        fill_until_stalled(a)
        b.settimeout(2)
        b.connect(addr)
        b.sendall(b"ping")
        assert recv_exactly(b, 4) == b"ping"
        b.shutdown(socket.SHUT_WR)
        assert recv_all(b) == b""
    finally:
        a.close()
        b.close()
