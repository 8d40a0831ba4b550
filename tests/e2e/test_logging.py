"""Logs: [log_location] files for each half, RUST_LOG over log_level, the audit trail,
and a log file that cannot be opened as a clear start-up error."""

import re
import socket

from harness import echo, free_tcp_port, recv_all, wait_until

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def log_config(qp, tmp_path, level="info", inbound=None):
    hp = free_tcp_port()
    extra = (f'[log_location]\nhost_log = "host.log"\nenclave_log = "enclave.log"\n'
             f'log_level = "{level}"\nhost_log_dir = "{tmp_path}/hostlogs/deep"\n'
             f'enclave_log_dir = "{tmp_path}/enclavelogs"\n')
    return hp, qp.config(inbound=inbound or [(hp, 6000, 9000)], extra=extra)


def echo_once(port, payload=b"ping"):
    assert echo(port, payload) == payload


def test_each_half_writes_its_own_file_with_an_audit_trail(qp, tmp_path):
    hp, cfg = log_config(qp, tmp_path)
    qp.server("echo", 6000)
    enclave = qp.enclave(cfg, env={"RUST_LOG": None})
    host = qp.host(cfg, env={"RUST_LOG": None})
    echo_once(hp, b"x" * 1000)
    host_log = tmp_path / "hostlogs/deep/host.log"  # the dir was created
    enclave_log = tmp_path / "enclavelogs/enclave.log"
    wait_until(lambda: "closed" in host_log.read_text() and "closed" in enclave_log.read_text(),
               5, "both halves to log the connection's end")
    h = host_log.read_text()
    # Every line: RFC 3339 UTC time, level, then the event.
    for line in h.splitlines():
        assert re.match(TIME + r" (ERROR|WARN |INFO |DEBUG|TRACE) ", line), line
    # The rule, the peer, the far side, then bytes each way and the duration.
    assert re.search(r"INFO  c1 inbound %d: 127\.0\.0\.1:\d+ -> vsock 4:9000: connected" % hp, h)
    assert re.search(r"INFO  c1 inbound %d: closed; 1000 bytes up, 1000 down, \d+ ms" % hp, h)
    e = enclave_log.read_text()
    assert re.search(r"c1 inbound %d: .* -> 127\.0\.0\.1:6000: connected" % hp, e)
    assert "1000 bytes up, 1000 down" in e
    # The files have it all; stderr has none of it.
    assert "connected" not in host.stderr() and "connected" not in enclave.stderr()


def test_rust_log_overrides_log_level(qp, tmp_path):
    hp, cfg = log_config(qp, tmp_path, level="error")
    qp.server("echo", 6000)
    qp.enclave(cfg, env={"RUST_LOG": "OFF"})  # the guide's spelling
    qp.host(cfg, env={"RUST_LOG": "warn,qproxy=info"})  # EnvFilter directives
    echo_once(hp)
    host_log = tmp_path / "hostlogs/deep/host.log"
    wait_until(lambda: "closed" in host_log.read_text(), 5, "the host half to log at info")
    assert (tmp_path / "enclavelogs/enclave.log").read_text() == ""


def test_failures_are_logged_at_the_default_level(qp, tmp_path):
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    host = qp.host(cfg, env={"RUST_LOG": None})  # default: warn
    with socket.create_connection(("127.0.0.1", hp), timeout=5) as s:
        s.settimeout(5)
        assert recv_all(s) == b""
    wait_until(lambda: "WARN" in host.stderr(), 5, "a warning about the absent enclave half")
    assert re.search(r"WARN  c1 inbound %d: 127\.0\.0\.1:\d+ -> vsock 4:9000: connect: "
                     r"Connection refused \(is the enclave half running" % hp, host.stderr())
    assert "INFO" not in host.stderr()


def test_log_file_that_cannot_be_opened_stops_the_start(qp, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log dir should be\n")
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)],
                    extra=f'[log_location]\nhost_log = "host.log"\nhost_log_dir = "{blocker}/x"\n')
    p = qp.host(cfg, wait=False)
    assert p.wait(5) == 3
    assert f"qproxy: error: create log dir {blocker}: File exists" in p.stderr() or \
        f"qproxy: error: create log dir {blocker}/x: Not a directory" in p.stderr(), p.stderr()
