"""SIGTERM and SIGINT make each half exit 0 promptly, even with connections open."""

import signal
import socket

import pytest

from harness import free_tcp_port, recv_exactly


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("half", ["host", "enclave"])
def test_signal_exits_0_promptly(qp, half, sig):
    host_port = free_tcp_port()
    cfg = qp.config(inbound=[(host_port, 6000, 9000)])
    qp.server("echo", 6000)
    procs = {"enclave": qp.enclave(cfg), "host": qp.host(cfg)}
    # An open, live connection must not hold the exit up.
    with socket.create_connection(("127.0.0.1", host_port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(b"ping")
        assert recv_exactly(s, 4) == b"ping"
        p = procs[half]
        p.signal(sig)
        rc = p.wait(2)
        assert rc == 0, f"{half} exited with status {rc} on {sig.name}\nstderr: {p.stderr()}"
