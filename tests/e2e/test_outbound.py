"""Outbound rules: a program in the enclave reaches a server on the parent's side."""

import os
import socket

import pytest

from harness import free_tcp_port, recv_all


def echo_roundtrip(sock, payload):
    sock.settimeout(10)
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    return recv_all(sock)


@pytest.mark.parametrize("host_args", [[], ["--ipv4"]], ids=["default", "ipv4"])
@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_enclave_reaches_host_server(qp, netns, hostname, host_args):
    port = free_tcp_port()
    qp.server("echo", port, in_netns=False)
    # The namespace really is cut off: the server is unreachable without qproxy.
    with pytest.raises(ConnectionRefusedError):
        netns.connect("127.0.0.1", port, timeout=2).close()

    # The enclave half listens on 127.0.0.1:port in the namespace; the host half
    # connects to hostname:port.
    cfg = qp.config(outbound=[(hostname, 8001, port)])
    qp.host(cfg, args=["host", f"--config={cfg}", *host_args,
                       "--vsock-dir", str(qp.vsock_dir), "4"])
    qp.enclave(cfg)

    for i in range(3):  # a new connection each time; the name is resolved each time
        payload = os.urandom(100_000) + b"end %d" % i
        with netns.connect("127.0.0.1", port) as s:
            assert echo_roundtrip(s, payload) == payload


def test_inbound_and_outbound_in_one_config(qp, netns):
    out_port = free_tcp_port()
    in_port = free_tcp_port()
    qp.server("echo", out_port, in_netns=False)
    qp.server("echo", 6000)
    cfg = qp.config(inbound=[(in_port, 6000, 9000)], outbound=[("127.0.0.1", 9001, out_port)])
    qp.enclave(cfg)
    qp.host(cfg)
    with netns.connect("127.0.0.1", out_port) as s:
        assert echo_roundtrip(s, b"from the enclave") == b"from the enclave"
    with socket.create_connection(("127.0.0.1", in_port), timeout=5) as s:
        assert echo_roundtrip(s, b"from the parent") == b"from the parent"
