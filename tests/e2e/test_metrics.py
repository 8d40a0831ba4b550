"""The host half's Prometheus endpoint (qproxy host --metrics, [host] metrics): figures that
match the traffic in both halves, checked by Debian's promtool on the live scrape; other
paths, methods and garbage answered and closed; slow and many clients that hold neither
the endpoint nor forwarding; the enclave link's state; a supervised app's restarts and
exits; egress by destination in both halves (the egress test's namespaces and servers);
addresses refused clearly."""

import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import harness
from harness import free_tcp_port, wait_until
import test_egress as eg
from test_egress import certs, world  # noqa: F401 (fixtures)
from test_supervisor import app_enclave, sh

PROMTOOL = "/usr/bin/promtool"
# metrics.h: METRICS_CLIENTS
CLIENTS = 16


def scrape(port, host="127.0.0.1", path="/metrics"):
    """(status, headers, body) of one GET with a real HTTP client."""
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def samples(text):
    """{(name, ((label, value), ...)): value} of a text-format page; HELP and TYPE skipped."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m[2] or ""))
        key = (m[1], labels)
        assert key not in out, f"sample twice: {line!r}"
        out[key] = float(m[3])
    return out


def rule_value(s, name, rule, half, **more):
    """The sample of family name for rule and half (and more labels), or None."""
    for (n, labels), v in s.items():
        d = dict(labels)
        if n == name and d.get("rule") == rule and d.get("half") == half and \
                all(d.get(k) == w for k, w in more.items()):
            return v
    return None


def plain(s, name):
    return s.get((name, ()))


def promtool_check(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"promtool: {r.stdout}{r.stderr}\n{text}"


def raw(port, data, host="127.0.0.1"):
    """Send data, half-close, and read everything the server says until it closes. A
    server that answers and closes before it has read (a refusal) may have us see the
    close early: what came before it is still the answer."""
    got = b""
    with socket.create_connection((host, port), timeout=10) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            while d := s.recv(1 << 16):
                got += d
        except ConnectionResetError:
            pass
    return got


def host_with_metrics(qp, cfg, mport, name="host"):
    return qp.host(cfg, name=name, args=["host", f"--config={cfg}", "--vsock-dir",
                                         str(qp.vsock_dir), "--metrics", f"127.0.0.1:{mport}",
                                         "4"])


def linked(qp):
    """Both halves linked over an echo rule, the host half serving metrics.
    Returns (host_port, metrics_port, config, host, enclave)."""
    hp, mport = free_tcp_port(), free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    qp.server("echo", 6000)
    enclave = qp.enclave(cfg)
    host = host_with_metrics(qp, cfg, mport)
    host.wait_tcp(mport)
    qp.wait_linked(host)
    return hp, mport, cfg, host, enclave


def test_scrape_matches_the_traffic_in_both_halves(qp):
    before = int(time.time())
    hp, mport, _, host, _ = linked(qp)
    rule = f"inbound {hp}"
    for n in (1000, 2345, 7):
        assert harness.echo(hp, b"m" * n) == b"m" * n

    def settled():
        st, _, text = scrape(mport)
        assert st == 200
        s = samples(text)
        want = all(rule_value(s, "qproxy_bytes_total", rule, half, direction=d) == 3352
                   for half in ("host", "enclave") for d in ("up", "down"))
        return text if want else None
    text = wait_until(settled, 10, "3352 bytes each way in both halves' figures")
    s = samples(text)
    for half in ("host", "enclave"):
        assert rule_value(s, "qproxy_connections_opened_total", rule, half) == 3
        assert rule_value(s, "qproxy_connections_open", rule, half) == 0
        assert rule_value(s, "qproxy_connections_refused_total", rule, half) == 0
        assert rule_value(s, "qproxy_connections_max", rule, half) is None  # no limit set
    for cause in ("connect", "resolve", "proxy_header", "relay", "internal"):
        assert rule_value(s, "qproxy_connections_failed_total", rule, "host", cause=cause) == 0
    assert rule_value(s, "qproxy_connections_failed_total", rule, "enclave",
                      cause="unknown") == 0
    assert plain(s, "qproxy_enclave_link_up") == 1
    assert plain(s, "qproxy_enclave_stats_up") == 1
    assert plain(s, "qproxy_enclave_links_total") == 1
    version = harness.run([qp.binary, "--version"]).stdout.split()[1]
    assert s[("qproxy_enclave_info", (("version", version),))] == 1
    assert s[("qproxy_info", (("version", version),))] == 1
    # The process itself, as Prometheus' client libraries name it: the fds are the host
    # half's own (give or take the scrape's connection), and it started during this test.
    assert abs(plain(s, "process_open_fds") - host.nfds()) <= 1
    assert plain(s, "process_max_fds") > plain(s, "process_open_fds")
    assert plain(s, "process_resident_memory_bytes") > 0
    assert before <= plain(s, "process_start_time_seconds") <= time.time()
    # The live page passes Debian's promtool, lint included.
    promtool_check(text)
    # Every family has its HELP and TYPE, counters end in _total.
    families = set(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name, kind in families:
        assert f"# HELP {name} " in text
        assert name.endswith("_total") == (kind == "counter"), name
    assert {n for n, _ in s} <= {n for n, _ in families}


def test_bytes_of_an_open_connection_count_as_they_flow(qp):
    hp, mport, _, _, _ = linked(qp)
    rule = f"inbound {hp}"
    with socket.create_connection(("127.0.0.1", hp), timeout=10) as c:
        c.sendall(b"o" * 5000)
        assert harness.recv_exactly(c, 5000) == b"o" * 5000
        # Still open: both halves count its bytes already, each way.
        def counted():
            s = samples(scrape(mport)[2])
            return s if all(
                rule_value(s, "qproxy_bytes_total", rule, half, direction=d) == 5000
                for half in ("host", "enclave") for d in ("up", "down")) else None
        s = wait_until(counted, 10, "5000 bytes each way while the connection is open")
        assert rule_value(s, "qproxy_connections_open", rule, "host") == 1
        assert rule_value(s, "qproxy_connections_open", rule, "enclave") == 1
        c.sendall(b"p" * 100)
        assert harness.recv_exactly(c, 100) == b"p" * 100
    # Closed: the same bytes, moved from the connection to the rule, counted once.
    wait_until(lambda: all(rule_value(samples(scrape(mport)[2]), "qproxy_bytes_total", rule, half,
                                      direction=d) == 5100
                           for half in ("host", "enclave") for d in ("up", "down")), 10,
               "5100 bytes each way once closed")
    s = samples(scrape(mport)[2])
    assert rule_value(s, "qproxy_connections_open", rule, "host") == 0


def test_answers_other_paths_methods_and_garbage_then_closes(qp):
    _, mport, _, _, _ = linked(qp)
    st, headers, body = scrape(mport)
    assert st == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert scrape(mport, path="/metrics?x=1")[0] == 200
    assert scrape(mport, path="/")[0] == 404
    assert scrape(mport, path="/metricsx")[0] == 404
    r = raw(mport, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n"), r
    assert b"\r\nAllow: GET, HEAD\r\n" in r
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET /metrics HTTP/9.9\r\n\r\n",
                 b"GET /metrics HTTP/1.1\r\n folded: header\r\n\r\n", b"hello\r\n\r\n"):
        r = raw(mport, junk)
        assert r.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (junk, r)
        assert b"\r\nConnection: close\r\n" in r
    r = raw(mport, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 431 "), r
    # HEAD: the head of the page, with its length, and no body.
    r = raw(mport, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    head, _, rest = r.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and rest == b"", r
    assert int(re.search(rb"Content-Length: (\d+)", head)[1]) > 0
    # Bound where it was told only: the rest of 127/8 reaches nothing.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", mport), timeout=5).close()


def test_a_slow_client_holds_neither_scrapes_nor_forwarding(qp):
    hp, mport, _, host, _ = linked(qp)
    slow = socket.create_connection(("127.0.0.1", mport), timeout=10)
    slow.sendall(b"GET /metr")  # and nothing more
    # It stalls, and meanwhile another scrape and a relayed connection go through.
    for _ in range(3):
        assert scrape(mport)[0] == 200
        assert harness.echo(hp, b"through") == b"through"
    # The stalled one is dropped at its deadline, without an answer.
    how, _ = harness.closed_within(slow, 30)
    assert how in ("eof", "reset")
    slow.close()
    assert host.alive()


def test_clients_that_never_read_nor_close_are_dropped(qp):
    _, mport, _, host, _ = linked(qp)
    base = host.nfds()
    # Whole requests, then silence: the answer waits in the socket, unread, and the
    # server waits for a close that never comes; its deadline ends the wait.
    mute = [socket.create_connection(("127.0.0.1", mport), timeout=10) for _ in range(3)]
    for s in mute:
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    wait_until(lambda: host.nfds() == base + 3, 10, "the three clients held")
    wait_until(lambda: host.nfds() == base, 30, "the three clients dropped at their deadline")
    for s in mute:
        s.close()
    assert scrape(mport)[0] == 200


def test_many_clients_at_once_are_bounded(qp):
    hp, mport, _, host, _ = linked(qp)
    idle = [socket.create_connection(("127.0.0.1", mport), timeout=10)
            for _ in range(CLIENTS)]
    # The endpoint is full: the next are told so and closed, and forwarding goes on.
    wait_until(lambda: raw(mport, b"GET /metrics HTTP/1.1\r\n\r\n").startswith(
        b"HTTP/1.1 503 "), 10, "a 503 with every place taken")
    extra = [raw(mport, b"GET /metrics HTTP/1.1\r\n\r\n") for _ in range(4)]
    assert all(r.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") for r in extra), extra
    assert harness.echo(hp, b"still") == b"still"
    nfds_full = host.nfds()
    for s in idle:
        s.close()
    # Their places free up as the server sees them close.
    text = wait_until(lambda: (lambda r: r[2] if r[0] == 200 else None)(scrape(mport)), 10,
                      "a scrape once the idle clients have gone")
    assert plain(samples(text), "qproxy_metrics_refused_total") >= 5
    wait_until(lambda: host.nfds() <= nfds_full - CLIENTS, 10, "the idle clients' fds closed")


def test_link_down_shows_and_the_enclave_series_go(qp):
    hp, mport, cfg, host, enclave = linked(qp)
    rule = f"inbound {hp}"
    enclave.stop()
    wait_until(lambda: plain(samples(scrape(mport)[2]), "qproxy_enclave_link_up") == 0, 15,
               "qproxy_enclave_link_up 0 with the enclave half stopped")
    text = scrape(mport)[2]
    s = samples(text)
    assert plain(s, "qproxy_enclave_stats_up") == 0
    assert not any(dict(l).get("half") == "enclave" for _, l in s), text
    assert not any(n == "qproxy_enclave_info" for n, _ in s)
    promtool_check(text)
    # With no enclave half, a client's connection fails to connect, and says so by cause.
    assert raw(hp, b"x") == b""
    wait_until(lambda: rule_value(samples(scrape(mport)[2]), "qproxy_connections_failed_total",
                                  rule, "host", cause="connect") == 1, 10,
               "one connect failure in the host half")
    # It comes back: a second link.
    qp.enclave(cfg, name="enclave2")
    wait_until(lambda: plain(samples(scrape(mport)[2]), "qproxy_enclave_links_total") == 2, 15,
               "the second link counted")
    s = samples(scrape(mport)[2])
    assert plain(s, "qproxy_enclave_link_up") == 1
    assert plain(s, "qproxy_enclave_stats_up") == 1


def test_config_key_serves_and_the_option_wins(qp):
    hp, from_key, from_option = free_tcp_port(), free_tcp_port(), free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)],
                    extra=f'[host]\nmetrics = "127.0.0.1:{from_key}"\n')
    host = qp.host(cfg)
    host.wait_tcp(from_key)
    assert scrape(from_key)[0] == 200
    host.stop()
    host = host_with_metrics(qp, cfg, from_option, name="host2")
    host.wait_tcp(from_option)
    assert scrape(from_option)[0] == 200
    assert not harness.tcp_listening(host.pid, from_key)


def test_ipv6_address_in_brackets(qp):
    mport = free_tcp_port()
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    host = qp.host(cfg, env={"QPROXY_METRICS": f"[::1]:{mport}"})
    host.wait_tcp(mport)
    st, _, text = scrape(mport, host="[::1]")
    assert st == 200
    promtool_check(text)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", mport), timeout=5).close()


def test_bad_metrics_addresses_are_refused_clearly(qp):
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    base = [qp.binary, "host", f"--config={cfg}", "--vsock-dir", str(qp.vsock_dir)]
    r = harness.run(base + ["--metrics", "localhost:9464", "4"])
    assert r.returncode == 2
    assert ("qproxy: error: invalid --metrics: localhost:9464: localhost is not an IPv4 "
            "address or an IPv6 address in brackets") in r.stderr
    r = harness.run(base + ["--metrics", "127.0.0.1:70000", "4"])
    assert r.returncode == 2
    assert "port 70000 is not a number in 1..65535" in r.stderr
    # Taken already: a startup error naming the address and the cause, and no half left running.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = harness.run(base + ["--metrics", f"127.0.0.1:{port}", "4"])
    assert r.returncode == 3
    # glibc's words, or musl's.
    assert re.search(rf"qproxy: error: metrics: bind tcp 127\.0\.0\.1:{port}: Address "
                     r"(already )?in use", r.stderr), r.stderr
    # Not an address of this machine.
    r = harness.run(base + ["--metrics", "192.0.2.1:9464", "4"])
    assert r.returncode == 3
    assert re.search(r"qproxy: error: metrics: bind tcp 192\.0\.2\.1:9464: (Cannot assign "
                     r"requested address|Address not available)", r.stderr), r.stderr
    bad = qp.config(inbound=[(free_tcp_port(), 6000, 9000)],
                    extra='[host]\nmetrics = "::1:9464"\n')
    r = harness.run([qp.binary, "host", f"--config={bad}", "4"])
    assert r.returncode == 1
    assert "metrics: ::1:9464: ::1 is not an IPv4 address or an IPv6 address in brackets" \
        in r.stderr
    r = harness.run([qp.binary, "enclave", f"--config={cfg}", "--metrics", "127.0.0.1:9464"])
    assert r.returncode == 2
    assert "--metrics is the host half's" in r.stderr


def test_example_alert_rules_are_valid():
    # The README's alerts, as a rules file a user loads: Prometheus' own checker takes it.
    rules = harness.REPO / "examples" / "metrics" / "qproxy-alerts.yml"
    r = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 9 rules found" in r.stdout


def test_app_restarts_show_in_a_scrape(qp, tmp_path):
    mport = free_tcp_port()
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    host = host_with_metrics(qp, cfg, mport)
    host.wait_tcp(mport)
    runs = tmp_path / "runs"
    # Fails twice with status 3, then stays up: --restart=always starts it three times.
    script = f"echo run >> {runs}; [ $(wc -l < {runs}) -ge 3 ] && exec sleep 60; exit 3"
    enclave = app_enclave(qp, cfg, sh(script), opts=["--restart=always"])

    def third_run():
        text = scrape(mport)[2]
        s = samples(text)
        up = plain(s, "qproxy_app_up") == 1 and plain(s, "qproxy_app_restarts_total") == 2
        return text if up else None
    text = wait_until(third_run, 15, "the third run up, after 2 restarts, in a scrape")
    s = samples(text)
    assert plain(s, "qproxy_app_exits_total") == 2
    assert plain(s, "qproxy_app_last_exit_status") == 3
    assert s[("qproxy_app_info", (("command", f"/bin/sh -c {script}"),))] == 1
    promtool_check(text)
    # Killed from outside: down, one more exit, by its signal; no restart while the half stops.
    enclave.signal(signal.SIGTERM)
    assert enclave.wait(15) == 128 + signal.SIGTERM

    def exited():
        text = scrape(mport)[2]
        return text if plain(samples(text), "qproxy_app_up") == 0 else None
    s = samples(wait_until(exited, 15, "the app down in a scrape"))
    assert plain(s, "qproxy_app_exits_total") == 3
    assert plain(s, "qproxy_app_last_exit_status") == 128 + signal.SIGTERM
    assert plain(s, "qproxy_app_restarts_total") == 2
    assert plain(s, "qproxy_app_uptime_seconds") == 0


@pytest.mark.timeout(90)
def test_egress_by_destination_shows_in_a_scrape(qp, netns, world, certs):
    mport = 9464
    host_ns, _ = world
    host, _ = eg.start(qp, world, [f"{eg.API}:8080"],
                       enclave_allow=[f"{eg.API}:8080", "*.qproxy.test:*"],
                       host_deny=["hostdenied.qproxy.test:*"],
                       host_extra=f'[host]\nmetrics = "127.0.0.1:{mport}"\n')
    host.wait_tcp(mport)
    # Allowed by both halves; denied by the host half; denied by the enclave half.
    rc, body, code, err = eg.curl(netns, certs, "-x", eg.PROXY, f"http://{eg.API}:8080/x")
    assert (rc, code) == (0, "200"), err
    assert eg.curl(netns, certs, "-x", eg.PROXY, "http://hostdenied.qproxy.test:8080/")[2] == \
        "403"
    assert eg.curl(netns, certs, "-x", eg.PROXY, "http://outside.example:80/")[2] == "403"
    # The host half listens in its own namespace: scraped from there.
    argv = host_ns.exec_argv(["curl", "-sS", "--max-time", "10",
                              f"http://127.0.0.1:{mport}/metrics"])

    def closed():
        text = subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
        s = samples(text)
        return text if s.get(("qproxy_egress_connections_open",
                              (("dest", f"{eg.API}:8080"), ("half", "enclave")))) == 0 else None
    text = wait_until(closed, 10, "the egress connection closed in a scrape")
    s = samples(text)

    def egress(name, dest, half, **more):
        return s.get((name, (("dest", dest), ("half", half), *more.items())))
    api = f"{eg.API}:8080"
    for half in ("host", "enclave"):
        assert egress("qproxy_egress_connections_opened_total", api, half) == 1
        assert egress("qproxy_egress_denied_total", api, half) == 0
        for d in ("up", "down"):
            assert egress("qproxy_egress_bytes_total", api, half, direction=d) > 0
        # Denied by the host half: each half counts it, the enclave's client was refused.
        assert egress("qproxy_egress_denied_total", "hostdenied.qproxy.test:8080", half) == 1
    # The enclave half's own denial never reached the host half.
    assert egress("qproxy_egress_denied_total", "outside.example:80", "enclave") == 1
    assert egress("qproxy_egress_denied_total", "outside.example:80", "host") is None
    # The bytes agree with `qproxy status`'s.
    rows = {(r[0], r[1]): r for r in eg.egress_rows(qp)}
    for half in ("host", "enclave"):
        assert egress("qproxy_egress_bytes_total", api, half, direction="up") == \
            int(rows[(api, half)][5])
    promtool_check(text)
