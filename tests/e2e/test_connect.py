"""Connects: 5 s per address, and a hostname's addresses tried in the order the resolver
gives them (its hosts file's order here).

The host half runs in a namespace of its own (its /etc/hosts is /etc/netns/NAME/hosts,
bind-mounted by `ip netns exec`) with a veth link to a second namespace, where the live
server listens on 192.0.2.2 (TEST-NET-1, and only inside these two namespaces). The
blackholed addresses, 192.0.2.3 to .5, have static neighbour entries with a MAC nobody
has: every SYN to them crosses the link and is dropped there, unanswered, so a connect
to one can only time out. Both libcs sort a name's IPv4 addresses by RFC 6724 rule 9
(longest prefix shared with the source address, 192.0.2.1/24) and keep the file's order
on a tie, so the addresses are chosen to tie: .2 with .3, .4 with .5.

What was tried is read from the host half's namespace, whose only TCP connects are
qproxy's: Tcp ActiveOpens in /proc/PID/net/snmp counts the attempts, RetransSegs the
unanswered SYNs. Which address was reached, or which failed last, is in its log.
"""

import re
import socket
import time

import pytest

from harness import (PYTHON, SERVERS, closed_within, free_tcp_port, recv_all, veth_link,
                     wait_until)

LIVE = "192.0.2.2"
HOSTS = """127.0.0.1 localhost
192.0.2.3 blackhole-first.test
192.0.2.2 blackhole-first.test
192.0.2.2 live-first.test
192.0.2.3 live-first.test
192.0.2.4 all-blackholed.test
192.0.2.5 all-blackholed.test
"""
DEADLINE = 30  # seconds; about 5 per blackholed address is expected


@pytest.fixture
def link():
    """(the host half's namespace, the server's), joined by a veth pair."""
    with veth_link(LIVE, HOSTS, blackholed=(3, 4, 5)) as pair:
        yield pair


def tcp_counters(pid):
    """Tcp counters of the network namespace pid is in, from /proc/PID/net/snmp."""
    with open(f"/proc/{pid}/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


@pytest.mark.timeout(DEADLINE + 30)
@pytest.mark.parametrize("name", ["live-first.test", "blackhole-first.test",
                                  "all-blackholed.test"])
def test_addresses_tried_in_order_5_s_each(qp, netns, link, name):
    host_ns, server_ns = link
    port = free_tcp_port()
    cfg = qp.config(outbound=[(name, 9001, port)])
    server = qp.procs.start("echo-server", [PYTHON, str(SERVERS), "echo", LIVE, str(port)],
                            netns=server_ns)
    server.wait_tcp(port)
    host = qp.host(cfg, netns=host_ns)
    qp.enclave(cfg)
    qp.wait_linked(host)
    before = tcp_counters(host.pid)
    t0 = time.monotonic()
    rule = f"outbound {name}:{port}: vsock (emulated) -> "
    if name == "all-blackholed.test":
        with netns.connect("127.0.0.1", port) as s:
            how, _ = closed_within(s, DEADLINE)
        assert how is not None, f"the client is still open after {DEADLINE} s"
        # The last address tried is the second, and the attempt on it timed out
        # (ETIMEDOUT: glibc's "Connection timed out", musl's "Operation timed out").
        line = re.escape(f"{rule}{name} (192.0.2.5:{port}): connect: ") + \
            "(Connection|Operation) timed out"
        wait_until(lambda: re.search(line, host.stderr()), 5, "the host half to log the timeout",
                   watch=[host])
    else:
        with netns.connect("127.0.0.1", port, timeout=DEADLINE) as s:
            s.sendall(b"which address?")
            s.shutdown(socket.SHUT_WR)
            assert recv_all(s) == b"which address?"
        wait_until(lambda: f"{rule}{name} ({LIVE}:{port}): connected" in host.stderr(), 5,
                   "the host half to log the address it reached", watch=[host])
    elapsed = time.monotonic() - t0
    after = tcp_counters(host.pid)
    attempts = after["ActiveOpens"] - before["ActiveOpens"]
    unanswered = after["RetransSegs"] - before["RetransSegs"]
    print(f"{name}: {attempts} connect attempts, {unanswered} SYNs sent again, "
          f"{elapsed:.1f} s")
    if name == "live-first.test":
        assert attempts == 1, "the live first address was not the only one tried"
        assert unanswered == 0
    else:
        # Two attempts: the first, blackholed, address went unanswered until qproxy gave up
        # on it (the kernel alone would retry a SYN for two minutes), then the second.
        assert attempts == 2, f"{attempts} connect attempts, expected 2"
        assert unanswered > 0, "no SYN was sent again: the first address did not time out"
    assert "connect:" not in host.stderr() or name == "all-blackholed.test"
