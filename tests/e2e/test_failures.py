"""A dead far side closes the client at once, and the proxy survives it."""

import hashlib
import signal
import socket
import struct

import pytest

from harness import closed_within, free_tcp_port, recv_all, recv_exactly, wait_until

ATTEMPTS = 5


def assert_closed_at_once(connect, what):
    for i in range(ATTEMPTS):
        with connect() as s:
            how, elapsed = closed_within(s, 1.0)
            assert how is not None, f"attempt {i}: client still open after 1 s ({what})"


def assert_echo(connect):
    with connect() as s:
        s.settimeout(5)
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b"ping"


def test_enclave_half_absent(qp):
    host_port = free_tcp_port()
    cfg = qp.config(inbound=[(host_port, 6000, 9000)])
    host = qp.host(cfg)
    connect = lambda: socket.create_connection(("127.0.0.1", host_port), timeout=5)
    assert_closed_at_once(connect, "no enclave half")
    assert host.alive(), "host half died"
    # Once the enclave half and the app come up, the same rule works.
    qp.server("echo", 6000)
    qp.enclave(cfg)
    assert_echo(connect)
    assert host.alive()


def test_application_absent(qp):
    host_port = free_tcp_port()
    cfg = qp.config(inbound=[(host_port, 6000, 9000)])
    enclave = qp.enclave(cfg)
    host = qp.host(cfg)
    connect = lambda: socket.create_connection(("127.0.0.1", host_port), timeout=5)
    assert_closed_at_once(connect, "nothing listens on enclave_port")
    assert host.alive(), "host half died"
    assert enclave.alive(), "enclave half died"
    qp.server("echo", 6000)
    assert_echo(connect)


def test_outbound_server_absent(qp, netns):
    port = free_tcp_port()  # nothing listens there yet
    cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
    host = qp.host(cfg)
    enclave = qp.enclave(cfg)
    connect = lambda: netns.connect("127.0.0.1", port)
    assert_closed_at_once(connect, "no server on the parent's side")
    assert host.alive(), "host half died"
    assert enclave.alive(), "enclave half died"
    qp.server("echo", port, in_netns=False)
    assert_echo(connect)


def test_outbound_host_half_absent(qp, netns):
    port = free_tcp_port()
    cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
    enclave = qp.enclave(cfg)
    connect = lambda: netns.connect("127.0.0.1", port)
    assert_closed_at_once(connect, "no host half")
    assert enclave.alive(), "enclave half died"
    qp.server("echo", port, in_netns=False)
    qp.host(cfg)
    assert_echo(connect)
    assert enclave.alive()


def test_application_dies_mid_connection(qp):
    host_port = free_tcp_port()
    cfg = qp.config(inbound=[(host_port, 6000, 9000)])
    app = qp.server("echo", 6000)
    enclave = qp.enclave(cfg)
    host = qp.host(cfg)
    socks = [socket.create_connection(("127.0.0.1", host_port), timeout=5) for _ in range(3)]
    try:
        for s in socks:
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
        app.signal(signal.SIGKILL)
        for i, s in enumerate(socks):
            how, _ = closed_within(s, 1.0)
            assert how is not None, f"connection {i}: still open 1 s after the app died"
    finally:
        for s in socks:
            s.close()
    assert host.alive() and enclave.alive()


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_client_abort_reaches_the_server(qp, netns, direction):
    """The client resets its connection with nothing unread anywhere. The half next to it
    closes both of its sides at once and logs the reset; the link to the other half carries
    no reset (neither vsock nor its Unix-socket emulation has one: a Unix stream socket
    closed with nothing unread in it gives its peer a plain EOF), so the other half sees
    an EOF and passes it on as one: the server reads the bytes sent before the reset, then
    an EOF, at once. (Within one half a reset is passed on as a reset: tests/unit/
    test_relay.c, reset_from_client_tcp.)"""
    if direction == "inbound":
        host_port = free_tcp_port()
        server = qp.server("shutfirst", 6000)
        cfg = qp.config(inbound=[(host_port, 6000, 9000)])
        far = qp.enclave(cfg)
        near = qp.host(cfg)
        s = socket.create_connection(("127.0.0.1", host_port), timeout=5)
        label = f"inbound {host_port}"
    else:
        port = free_tcp_port()
        server = qp.server("shutfirst", port, in_netns=False)
        cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
        far = qp.host(cfg)
        near = qp.enclave(cfg)
        s = netns.connect("127.0.0.1", port)
        label = f"outbound 127.0.0.1:{port}"  # an outbound rule is named by its far end
    with s:
        assert recv_exactly(s, 6) == b"hello\n"  # the server is there
        s.sendall(b"partial")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # shutfirst prints "received ..." on EOF, or logs the reset on stderr.
    wait_until(lambda: "received" in server.stdout() or "reset" in server.stderr(), 1.0,
               "the server to see the client's abort")
    assert server.stdout() == "received 7 bytes sha256 %s\n" % hashlib.sha256(b"partial").hexdigest()
    assert server.stderr() == ""
    # The near half saw the reset (routine for a client: info); the far half a clean end.
    wait_until(lambda: f"{label}: closed on error from the client side: Connection reset by "
               "peer; 7 bytes up, 6 down" in near.stderr(), 5,
               "the near half to log the client's reset", watch=[near])
    wait_until(lambda: f"{label}: closed; 7 bytes up, 6 down" in far.stderr(), 5,
               "the far half to log a clean end", watch=[far])


def test_bind_failure_exits_3(qp):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = qp.config(inbound=[(port, 6000, 9000)])
        host = qp.host(cfg, wait=False)
        assert host.wait(5) == 3, f"exit status {host.returncode}, expected 3 (runtime failure)"
        assert str(port) in host.stderr(), "the error should name the port"
