"""The vendor guide's quick start: curl localhost:5050 on the parent reaches the app in the enclave."""

import re
import socket

import pytest

from harness import port_in_use, recv_all, run, wait_until

# The guide's config_qproxy.toml, without [log_location] (logs go to stderr).
GUIDE_INBOUND = [(5050, 5050, 9995), (5443, 5443, 9994)]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\b")


def start_guide_setup(qp, env=None):
    for port in (5050, 5443):
        if port_in_use(port):
            pytest.fail(f"port {port} is already in use in the root namespace; "
                        "the guide's quick start needs it")
    cfg = qp.config(inbound=GUIDE_INBOUND, name="config_qproxy.toml")
    qp.server("hello", 5050)
    enclave = qp.enclave(cfg, env=env)
    host = qp.host(cfg, env=env)
    return host, enclave


def curl_hello():
    r = run(["curl", "-sS", "--max-time", "5", "localhost:5050"])
    assert r.returncode == 0, f"curl failed: {r.stderr}"
    return r.stdout


def test_curl_prints_hello_world(qp):
    host, enclave = start_guide_setup(qp)
    assert curl_hello() == "Hello world!\n"
    # Again, and again: the rule keeps serving.
    for _ in range(5):
        assert curl_hello() == "Hello world!\n"
    assert host.alive() and enclave.alive()


def test_info_log_has_audit_lines(qp):
    """At info each half logs who connected, through which rule, to where, and on close
    the bytes each way and the duration; every line starts with an RFC 3339 time."""
    host, enclave = start_guide_setup(qp)  # RUST_LOG=info is the harness default
    request = b"GET / HTTP/1.1\r\nHost: localhost:5050\r\n\r\n"
    with socket.create_connection(("127.0.0.1", 5050), timeout=5) as s:
        client = "%s:%d" % s.getsockname()
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        answer = recv_all(s)
    assert answer.endswith(b"\r\n\r\nHello world!\n"), answer
    # A request and an answer this small go by read and write: splice is for bulk.
    closed = r"c1 inbound 5050: closed; %d bytes up, %d down, \d+ ms; up copy, down copy$" % (
        len(request), len(answer))
    expected = {
        host: [rf"INFO  c1 inbound 5050: {re.escape(client)} -> vsock 4:9995: connected$", closed],
        enclave: [r"INFO  c1 inbound 5050: vsock \(emulated\) -> 127\.0\.0\.1:5050: connected$",
                  closed],
    }
    for p, patterns in expected.items():
        for pat in patterns:
            wait_until(lambda: re.search(pat, p.stderr(), re.M), 5,
                       f"{p.name} to log /{pat}/ at RUST_LOG=info\n{p.stderr()}")
        for line in p.stderr().splitlines():
            assert RFC3339.match(line), f"{p.name} log line lacks an RFC 3339 time: {line!r}"
    # The enclave half's lines reach the host half's log too, marked as the enclave's.
    wait_until(lambda: re.search(r"INFO  \[enclave\] " + closed, host.stderr(), re.M), 5,
               "the enclave half's audit line in the host half's log")


def test_default_level_is_quiet_on_success(qp):
    # Default level is warn: a clean connection logs nothing.
    host, enclave = start_guide_setup(qp, env={"RUST_LOG": None})
    assert curl_hello() == "Hello world!\n"
    # (Stopping one half would make the other warn that its peer left: check before.)
    enclave.stop()
    assert host.stderr() == "" or "control: the enclave half is gone" in host.stderr()
    assert host.stderr().count("\n") <= 1, host.stderr()
    host.stop()
    assert enclave.stderr() == "", enclave.stderr()
