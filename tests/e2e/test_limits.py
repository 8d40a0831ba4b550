"""Limits and timeouts per rule: max_connections refuses at once and says so, idle_timeout
closes a silent connection and spares a busy one, connect_timeout gives up on a blackholed
address in its own time."""

import re
import select
import socket
import time

import pytest

import harness
from harness import closed_within, free_tcp_port, wait_until
from test_connect import link  # noqa: F401  (the fixture: a veth link with blackholed addresses)


def ping(s, payload=b"x"):
    """One round trip on a held connection: the whole path is up."""
    s.sendall(payload)
    assert harness.recv_exactly(s, len(payload)) == payload


def limits(n=None, idle=None, connect=None):
    return "".join(f"{k} = {v}\n" for k, v in (("max_connections", n), ("idle_timeout", idle),
                                                ("connect_timeout", connect)) if v is not None)


def with_limits(text, rule_header, extra):
    """The config text with extra keys added to the first rule under rule_header."""
    head, sep, rest = text.partition(rule_header)
    body, nl, tail = rest.partition("\n\n")
    return head + sep + body + "\n" + extra + nl + tail


def status(qp):
    r = harness.run([qp.binary, "status", "--status-socket", str(qp.status_socket())])
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("half", ["host", "enclave"])
def test_max_connections_refuses_at_once_and_recovers(qp, half):
    """host: an inbound rule, whose listener is the host half's; enclave: an outbound rule,
    whose listener is the enclave half's. Another rule of the same half serves throughout."""
    full, other = free_tcp_port(), free_tcp_port()
    if half == "host":
        cfg = qp.config(inbound=[(full, 6000, 9000), (other, 6000, 9001)])
        header = "[[inbound_connections]]\nhost_port = %d\n" % full
        qp.server("echo", 6000)
        connect = lambda port: socket.create_connection(("127.0.0.1", port), timeout=5)  # noqa
    else:
        cfg = qp.config(outbound=[("127.0.0.1", 9000, full), ("127.0.0.1", 9001, other)])
        header = "[[outbound_connections]]\nhostname = \"127.0.0.1\"\nvsock_port = 9000\n"
        qp.server("echo", full, in_netns=False)
        qp.server("echo", other, in_netns=False)
        connect = lambda port: qp.netns.connect("127.0.0.1", port)  # noqa
    cfg.path.write_text(with_limits(cfg.text, header, limits(n=2)))
    enclave = qp.enclave(cfg)
    host = qp.host(cfg)
    qp.wait_linked(host)
    proc = host if half == "host" else enclave
    rule = f"inbound {full}" if half == "host" else f"outbound 127.0.0.1:{full}"

    held = [connect(full), connect(full)]
    try:
        for s in held:
            ping(s)
        third = connect(full)
        with third:
            how, took = closed_within(third, 3)
            assert how is not None, "the third client was not closed within 3 s"
            print(f"third client: {how} after {took:.2f} s")
            assert took < 2, f"the third client was closed only after {took:.2f} s"
        line = re.escape(f"WARN  {rule}: refused ") + r"\S+" + \
            re.escape(": max_connections 2 open; 1 refused since last said")
        wait_until(lambda: re.search(line, proc.stderr()), 5, "the warn line", watch=[proc])
        # The other rule, and the held ones, go on.
        with connect(other) as s:
            ping(s, b"other")
        for s in held:
            ping(s, b"still")
        if half == "host":
            out = status(qp)
            # Refused before it was counted as a connection; the enclave half, with the
            # same config, has its own limit and saw only the two.
            assert re.search(r"inbound %d\s+host\s+2/2\s+2\s+0\s+\d+\s+\d+\s+1\n" % full,
                             out), out
            assert re.search(r"inbound %d\s+enclave\s+2/2\s+2\s+0\s+\d+\s+\d+\s+0\n" % full,
                             out), out
        # One leaves: a new client is served again (once the half has seen it go).
        held.pop().close()

        def served():
            s = connect(full)
            try:
                ping(s)
            except (OSError, AssertionError):
                s.close()
                return None
            return s
        held.append(wait_until(served, 5, "a new client to be served after one left"))
    finally:
        for s in held:
            s.close()
    assert proc.stderr().count("max_connections 2 open") == 1


def test_idle_timeout_closes_the_silent_and_spares_the_busy(qp):
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    cfg.path.write_text(cfg.text + limits(idle=1))
    qp.server("echo", 6000)
    enclave = qp.enclave(cfg)
    host = qp.host(cfg)
    qp.wait_linked(host)
    silent = socket.create_connection(("127.0.0.1", hp), timeout=5)
    busy = socket.create_connection(("127.0.0.1", hp), timeout=5)
    closed_at = None
    with silent, busy:
        ping(silent)
        t0 = time.monotonic()
        ping(busy)
        # A byte every 0.3 s for 3 s on the busy one, never 1 s without; meanwhile the
        # silent one is watched for its close.
        while time.monotonic() - t0 < 3.5:
            if closed_at is not None:
                time.sleep(0.3)
            elif select.select([silent], [], [], 0.3)[0]:
                try:
                    assert silent.recv(1) == b"", "bytes from nowhere on the silent connection"
                except ConnectionResetError:
                    pass
                closed_at = time.monotonic() - t0
            ping(busy)
        ping(busy, b"alive")
    assert closed_at is not None, "the silent connection is still open after 3.5 s"
    print(f"silent connection closed {closed_at:.2f} s after its last byte")
    assert 0.9 < closed_at < 3.5
    # Each half times out its own side; the line names the rule and the limit.
    line = re.compile(r"INFO  .*" + re.escape(f"inbound {hp}: closed after ") +
                      r"\d+ ms without a byte either way \(idle_timeout 1 s\)")
    wait_until(lambda: line.search(host.stderr() + enclave.stderr()), 5, "the idle line",
               watch=[host, enclave])
    assert len(line.findall(enclave.stderr())) <= 1
    assert enclave.alive()


@pytest.mark.timeout(60)
def test_connect_timeout_gives_up_on_a_blackholed_address(qp, link):  # noqa: F811
    host_ns, _ = link
    port = free_tcp_port()
    cfg = qp.config(outbound=[("192.0.2.3", 9001, port)])
    cfg.path.write_text(cfg.text + limits(connect=1))
    host = qp.host(cfg, netns=host_ns)
    qp.enclave(cfg)
    qp.wait_linked(host)
    with qp.netns.connect("127.0.0.1", port) as s:
        t0 = time.monotonic()
        s.sendall(b"anyone?")
        how, _ = closed_within(s, 10)
        took = time.monotonic() - t0
    assert how is not None, "the client is still open after 10 s"
    print(f"gave up after {took:.2f} s")
    assert 0.8 < took < 4, f"gave up after {took:.2f} s, expected about 1"
    line = re.escape(f"outbound 192.0.2.3:{port}: vsock (emulated) -> 192.0.2.3 (192.0.2.3:{port}): "
                     "connect: ") + "(Connection|Operation) timed out"
    wait_until(lambda: re.search(line, host.stderr()), 5, "the host half to log the timeout",
               watch=[host])
