"""Half-close propagates through both halves, in both kinds of rule.

The proxies this project replaces tear a connection down on the first EOF; qproxy must
carry the shutdown(SHUT_WR) across and keep the other direction flowing.
"""

import hashlib
import os
import socket
import time

import pytest

from harness import free_tcp_port, recv_all, recv_exactly, wait_until

PAYLOAD = os.urandom(3 << 20)
# The server answers this long after the client's EOF, to catch proxies that close
# the other direction after a short linger.
DELAY = 1.5


def setup_rule(qp, netns, direction, mode, *server_args):
    """A rule of the given direction to a servers.py server.
    Returns the server and a connect() for clients on the other side."""
    if direction == "inbound":
        host_port = free_tcp_port()
        server = qp.server(mode, 6000, *server_args)
        cfg = qp.config(inbound=[(host_port, 6000, 9000)])
        qp.enclave(cfg)
        qp.host(cfg)
        return server, lambda: socket.create_connection(("127.0.0.1", host_port), timeout=5)
    port = free_tcp_port()
    server = qp.server(mode, port, *server_args, in_netns=False)
    cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
    qp.host(cfg)
    qp.enclave(cfg)
    return server, lambda: netns.connect("127.0.0.1", port)


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_client_shuts_write_then_gets_answer(qp, netns, direction):
    _, connect = setup_rule(qp, netns, direction, "halfclose", DELAY)
    with connect() as s:
        s.settimeout(10)
        s.sendall(PAYLOAD)
        s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        answer = recv_all(s)  # the answer, then EOF
        waited = time.monotonic() - t0
    expected = b"received %d bytes sha256 %s\n" % (len(PAYLOAD),
                                                    hashlib.sha256(PAYLOAD).hexdigest().encode())
    assert answer == expected
    assert waited >= DELAY - 0.2, "answer came before the server could have sent it"


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_server_shuts_write_first_client_still_sends(qp, netns, direction):
    server, connect = setup_rule(qp, netns, direction, "shutfirst")
    with connect() as s:
        s.settimeout(10)
        assert recv_exactly(s, 6) == b"hello\n"
        assert s.recv(1) == b"", "expected EOF after the server's shutdown"
        # Our direction is still open: send everything, then our EOF.
        s.sendall(PAYLOAD)
        s.shutdown(socket.SHUT_WR)
        # The server has nothing to send; wait for the proxy to close our side too.
        assert recv_all(s) == b""
    expected = "received %d bytes sha256 %s" % (len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
    wait_until(lambda: expected in server.stdout(), 10,
               "the server to report the client's bytes after the client's EOF")
