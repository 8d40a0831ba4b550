"""The control channel: config mismatches named on both sides, the enclave's log in the
host's, `qproxy status`, links that come back by themselves; and the enclave half on its
own: loopback brought up, hostnames through a hosts file with TLS checked end to end."""

import re
import socket
import subprocess
import textwrap

import pytest

import harness
from harness import free_tcp_port, recv_all, wait_until


def echo_once(port, payload):
    assert harness.echo(port, payload) == payload


def test_mismatched_configs_are_named_on_both_sides(qp):
    host_cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)],
                         outbound=[("127.0.0.1", 9001, 7000)], name="host.toml")
    enclave_cfg = qp.config(inbound=[(host_cfg.inbound[0][0], 6001, 9000)],
                            outbound=[("api.example.com", 7777, 443)], name="enclave.toml")
    enclave = qp.enclave(enclave_cfg)
    host = qp.host(host_cfg)
    qp.wait_linked(host)
    want = [
        r"inbound rule vsock_port 9000 \(.*\): enclave_port is 6000 in the host's config, "
        r"6001 in the enclave's",
        r"the host has outbound rule vsock_port 9001 \(enclave 127\.0\.0\.1:7000 -> "
        r"127\.0\.0\.1:7000\), the enclave does not",
        r"the enclave has outbound rule vsock_port 7777 \(enclave 127\.0\.0\.1:443 -> "
        r"api\.example\.com:443\), the host does not",
    ]
    for p in (host, enclave):
        for w in want:
            wait_until(lambda: re.search(r"WARN  control: config mismatch: " + w, p.stderr()), 5,
                       f"{p.name} to log /{w}/")
    # The enclave's own lines reach the host's log, marked as the enclave's.
    wait_until(lambda: re.search(r"WARN  \[enclave\] control: config mismatch: the enclave has "
                                 r"outbound rule vsock_port 7777", host.stderr()), 5,
               "the enclave's mismatch lines in the host's log")


def test_matching_configs_say_so(qp):
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    enclave = qp.enclave(cfg)
    host = qp.host(cfg)
    qp.wait_linked(host)
    for p in (host, enclave):
        wait_until(lambda: "half's rules match this one's (1 rules)" in p.stderr(), 5,
                   f"{p.name} to say the configs match")
    assert "mismatch" not in host.stderr() + enclave.stderr()


def test_enclave_log_reaches_the_host_even_when_written_while_it_was_away(qp, netns):
    port = free_tcp_port()
    cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
    enclave = qp.enclave(cfg)
    # No host half yet: the enclave half's outbound connect fails, and it says so.
    with netns.connect("127.0.0.1", port) as s:
        s.settimeout(5)
        assert recv_all(s) == b""
    wait_until(lambda: "connect: Connection refused" in enclave.stderr(), 5,
               "the enclave half to log the refused connect")
    host = qp.host(cfg)
    qp.wait_linked(host)
    wait_until(lambda: re.search(r"WARN  \[enclave\] c1 outbound 127\.0\.0\.1:%d: .* connect: "
                                 r"Connection refused" % port, host.stderr()), 5,
               "the line kept while the host was away to arrive")
    # Lines written while the link is up arrive too.
    qp.server("echo", port, in_netns=False)
    with netns.connect("127.0.0.1", port) as s:
        s.settimeout(5)
        s.sendall(b"hi")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b"hi"
    wait_until(lambda: re.search(r"INFO  \[enclave\] c2 outbound 127\.0\.0\.1:%d: closed; "
                                 r"2 bytes up, 2 down" % port, host.stderr()), 5,
               "the enclave's close line")
    # Every host line, the enclave's too, starts with its time.
    for line in host.stderr().splitlines():
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line), line


def status(qp, name="host"):
    return harness.run([qp.binary, "status", "--status-socket", str(qp.status_socket(name))])


def test_status_counts_match_the_traffic(qp):
    hp, _, _, _ = qp.linked_echo()
    for n in (1000, 2345, 7):
        echo_once(hp, b"z" * n)
    # The counters are read after each connection has closed, so poll until they settle.
    def rows():
        r = status(qp)
        assert r.returncode == 0, r.stderr
        return r.stdout
    want_host = re.compile(r"inbound %d\s+host\s+0\s+3\s+0\s+3352\s+3352" % hp)
    want_encl = re.compile(r"inbound %d\s+enclave\s+0\s+3\s+0\s+3352\s+3352" % hp)
    out = wait_until(lambda: (lambda o: o if want_host.search(o) and want_encl.search(o) else None)(
        rows()), 5, "status to show 3 connections and 3352 bytes each way in both halves")
    assert "enclave half: connected, qproxy" in out
    assert oct(harness.os.stat(qp.status_socket()).st_mode & 0o777) == "0o600"


def test_status_without_a_host_half_fails(qp):
    r = status(qp, "nobody")
    assert r.returncode == 3
    assert "qproxy: error: no host half answers at" in r.stderr


def test_status_socket_dirs_are_created_several_levels_deep(qp, tmp_path):
    # As in a tiny-init enclave or a minimal host without /run: no dir on the way exists.
    sock = tmp_path / "run" / "qp" / "x" / "host.sock"
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    host = qp.host(cfg, env={"QPROXY_STATUS_SOCKET": str(sock)})
    host.wait_unix(sock)
    r = harness.run([qp.binary, "status", "--status-socket", str(sock)])
    assert r.returncode == 0, r.stderr + host.stderr()
    assert "enclave half: not connected" in r.stdout
    assert "no qproxy status" not in host.stderr()
    assert oct(harness.os.stat(sock.parent).st_mode & 0o777) == "0o700"
    assert oct(harness.os.stat(sock).st_mode & 0o777) == "0o600"


def test_status_says_when_the_enclave_half_is_absent(qp):
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    qp.host(cfg)
    r = status(qp)
    assert r.returncode == 0, r.stderr
    assert "enclave half: not connected" in r.stdout
    assert re.search(r"inbound \d+\s+host\s+0\s+0\s+0\s+0\s+0", r.stdout)
    assert not re.search(r"\s+enclave\s+\d", r.stdout)  # no enclave rows


def test_links_come_back_after_either_half_restarts(qp):
    hp, cfg, host, enclave = qp.linked_echo()
    # The enclave half goes and comes back: the host half notices both.
    enclave.stop()
    wait_until(lambda: "control: the enclave half is gone" in host.stderr(), 10,
               "the host half to notice the enclave half left")
    enclave = qp.enclave(cfg, name="enclave2")
    qp.wait_linked(host)
    echo_once(hp, b"after the enclave came back")
    # The host half goes and comes back: the enclave half reconnects by itself.
    host.stop()
    wait_until(lambda: "control: link to the host half lost" in enclave.stderr(), 10,
               "the enclave half to notice the host half left")
    host = qp.host(cfg, name="host2")
    qp.wait_linked(host)
    echo_once(hp, b"after the host came back")


@pytest.fixture
def bare_ns():
    ns = harness.Netns.create("qpe2e", lo_up=False)
    try:
        yield ns
    finally:
        ns.delete()


def test_enclave_half_brings_loopback_up(bare_ns, qproxy_bin, procs, vsock_dir, tmp_path):
    qp = harness.QProxy(qproxy_bin, procs, bare_ns, vsock_dir, tmp_path)
    assert not bare_ns.lo_is_up()
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    enclave = qp.enclave(cfg)  # before any app: nothing else touches lo
    assert bare_ns.lo_is_up()
    assert "the loopback interface lo was down: brought it up with 127.0.0.1/8" in enclave.stderr()
    qp.server("echo", 6000)
    qp.host(cfg)
    echo_once(hp, b"through a loopback the enclave half raised")


# Two HTTPS APIs on port 443, told apart by name only. Inside the enclave each name maps,
# through the hosts file qproxy writes, to its own loopback address; the host half resolves
# the same names (in a private mount namespace with its own /etc/hosts) to two servers.
TLS_SERVER = textwrap.dedent("""
    import http.server, ssl, sys
    addr, cert, key, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    s = http.server.ThreadingHTTPServer((addr, 443), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s.socket = ctx.wrap_socket(s.socket, server_side=True)
    s.serve_forever()
""")


def make_ca(d, names):
    def sh(*argv):
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem", "-days",
       "1", "-subj", "/CN=qproxy test CA")
    for n in names:
        sh("openssl", "req", *ec, "-keyout", d / f"{n}.key", "-out", d / f"{n}.csr", "-subj",
           f"/CN={n}")
        (d / f"{n}.ext").write_text(f"subjectAltName=DNS:{n}\n")
        sh("openssl", "x509", "-req", "-in", d / f"{n}.csr", "-CA", d / "ca.pem", "-CAkey",
           d / "ca.key", "-CAcreateserial", "-out", d / f"{n}.pem", "-days", "1", "-extfile",
           d / f"{n}.ext")


@pytest.mark.timeout(90)
def test_two_https_apis_on_443_by_name_through_the_hosts_file(qp, netns, tmp_path):
    names = {"api-one.qproxy.test": "127.0.0.11", "api-two.qproxy.test": "127.0.0.12"}
    make_ca(tmp_path, names)
    script = tmp_path / "tls_server.py"
    script.write_text(TLS_SERVER)
    for n, addr in names.items():
        p = qp.procs.start(f"tls-{n}", [harness.PYTHON, str(script), addr, str(tmp_path / f"{n}.pem"),
                                        str(tmp_path / f"{n}.key"), f"this is {n}\n"])
        p.wait_tcp(443)
    # The enclave's /etc/hosts: `ip netns exec` mounts /etc/netns/NAME/hosts over it.
    etc = harness.Path("/etc/netns") / netns.name
    etc.mkdir(parents=True)
    try:
        (etc / "hosts").write_text("127.0.0.1 localhost\n10.9.8.7 keep.me.example\n")
        cfg = qp.config(extra=textwrap.dedent("""\
            [[outbound_connections]]
            hostname = "api-one.qproxy.test"
            vsock_port = 7001
            tcp_port = 443
            enclave_address = "127.0.0.2"

            [[outbound_connections]]
            hostname = "api-two.qproxy.test"
            vsock_port = 7002
            tcp_port = 443
            enclave_address = "127.0.0.3"

            [enclave]
            hosts_file = "/etc/hosts"
            """))
        # The host half resolves the names through a hosts file of its own.
        host_hosts = tmp_path / "host-hosts"
        host_hosts.write_text("".join(f"{a} {n}\n" for n, a in names.items()))
        host = qp.procs.start(
            "host", ["unshare", "-m", "sh", "-c",
                     f"mount --bind {host_hosts} /etc/hosts && exec {qp.binary} host "
                     f"--config={cfg} --vsock-dir {qp.vsock_dir} 4"],
            env={"RUST_LOG": "info", "QPROXY_STATUS_SOCKET": str(qp.status_socket())})
        for vp in (7001, 7002):
            host.wait_unix(qp.vsock_path(3, vp))
        enclave = qp.enclave(cfg, wait=False)
        wait_until(lambda: "wrote the outbound hostnames to /etc/hosts" in enclave.stderr(), 10,
                   "the enclave half to write its hosts file", watch=[enclave])
        enclave.wait_tcp(443)
        hosts = (etc / "hosts").read_text()
        assert "127.0.0.2\tapi-one.qproxy.test\n127.0.0.3\tapi-two.qproxy.test\n" in hosts
        assert "10.9.8.7 keep.me.example" in hosts  # the file's other lines are kept
        for n in names:
            r = subprocess.run(netns.exec_argv(["curl", "-sS", "--max-time", "10", "--cacert",
                                                str(tmp_path / "ca.pem"), f"https://{n}/"]),
                               capture_output=True, text=True, timeout=20,
                               preexec_fn=harness.VSOCK_GUARD.apply)
            assert r.returncode == 0, r.stderr + host.stderr() + enclave.stderr()
            assert r.stdout == f"this is {n}\n"
        # A second start replaces its block rather than adding one.
        enclave.stop()
        (etc / "hosts").write_text(hosts.replace("keep.me.example", "kept.again.example"))
        again = qp.enclave(cfg, wait=False, name="enclave2")
        wait_until(lambda: "wrote the outbound hostnames" in again.stderr(), 10,
                   "the second enclave half to write the hosts file", watch=[again])
        text = (etc / "hosts").read_text()
        assert text.count("# BEGIN qproxy") == 1 and text.count("api-one.qproxy.test") == 1
        assert "kept.again.example" in text
    finally:
        (etc / "hosts").unlink(missing_ok=True)
        etc.rmdir()


def frame(payload):
    return len(payload).to_bytes(4, "big") + payload


HELLO_HEAD = bytes([0xa1, 0x00, 0x01])  # {0: 1}: a HELLO with nothing in it


@pytest.mark.parametrize("bad,why", [
    ((100000).to_bytes(4, "big") + b"x" * 16, "protocol error: a message of 100000 bytes"),
    (frame(b"\xa1\x00\x5b\xff\xff\xff\xff\xff\xff\xff\xff"), "protocol error:"),
    (frame(b"\x81" * 40), "protocol error:"),
])
def test_host_half_drops_a_hostile_control_peer_and_keeps_serving(qp, bad, why):
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    qp.server("echo", 6000)
    host = qp.host(cfg)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(qp.vsock_path(3, 6666)))  # where the host half's control port is emulated
        s.sendall(frame(HELLO_HEAD))
        s.sendall(bad)
        wait_until(lambda: why in host.stderr(), 5, f"the host half to log '{why}'")
        recv_all(s)  # returns only at EOF, raises on timeout: the host half closed the link
    assert host.alive()
    qp.enclave(cfg)
    qp.wait_linked(host)
    echo_once(hp, b"still serving")


def test_enclave_half_drops_a_hostile_host_and_reconnects(qp):
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    qp.server("echo", 6000)
    # A fake host half on the control port: it answers the enclave with a frame too large.
    fake = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fake.bind(str(qp.vsock_path(3, 6666)))
    fake.listen(1)
    fake.settimeout(10)
    enclave = qp.enclave(cfg)
    conn, _ = fake.accept()
    with conn:
        conn.settimeout(5)
        conn.sendall((1 << 31).to_bytes(4, "big"))
        wait_until(lambda: "protocol error: a message of 2147483648 bytes" in enclave.stderr(), 5,
                   "the enclave half to refuse the frame")
        recv_all(conn)  # returns only at EOF: the enclave half dropped the link
    fake.close()
    harness.os.unlink(qp.vsock_path(3, 6666))
    assert enclave.alive()
    # The real host half arrives: the enclave half finds it by itself.
    host = qp.host(cfg)
    qp.wait_linked(host, timeout=15)
    echo_once(hp, b"after the impostor")


def test_lines_past_the_ring_are_counted_not_lost_silently(qp, netns):
    port = free_tcp_port()
    cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
    enclave = qp.enclave(cfg, env={"RUST_LOG": "warn"})
    # 200 refused connects while no host half runs: 200 warnings, more than the ring holds.
    for _ in range(200):
        with netns.connect("127.0.0.1", port) as s:
            s.settimeout(5)
            recv_all(s)
    wait_until(lambda: enclave.stderr().count("connect: Connection refused") == 200, 10,
               "the enclave half to log 200 refused connects")
    host = qp.host(cfg)
    qp.wait_linked(host)
    m = wait_until(lambda: re.search(r"\[enclave\] control: (\d+) log lines were dropped while "
                                     r"the host half was unreachable", host.stderr()), 5,
                   "the count of dropped lines")
    kept = len(re.findall(r"\[enclave\] c\d+ outbound", host.stderr()))
    assert kept == 128, f"{kept} of the enclave's connection lines arrived, not the ring's 128"
    # The newest lines are the ones kept, and with the count nothing is unaccounted for.
    assert "[enclave] c200 outbound 127.0.0.1:%d:" % port in host.stderr()
    assert int(m.group(1)) + kept == 200


# A hostile or broken peer on the control port while the enclave half is linked: bytes that
# are no frame, a frame cut short, or nothing at all.
@pytest.mark.parametrize("send,dropped", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "protocol error: a message of"),
    ((200).to_bytes(4, "big") + b"\xa2\x00\x01", "no hello for 6 s"),
    (b"", "no hello for 6 s"),
], ids=["garbage", "partial-frame", "nothing"])
def test_a_hostile_peer_never_bumps_a_good_link(qp, send, dropped):
    hp, _, host, _ = qp.linked_echo()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(qp.vsock_path(3, 6666)))  # where the host half's control port is emulated
        if send:
            s.sendall(send)
        # While the peer is there, and after: the link stays, status says so, and the
        # enclave's log lines keep arriving.
        for n in (1, 2):
            echo_once(hp, b"x" * n)
            wait_until(lambda: len(re.findall(r"\[enclave\] c\d+ inbound %d: closed" % hp,
                                              host.stderr())) == n, 5,
                       f"the enclave's log line for connection {n}")
            r = status(qp)
            assert r.returncode == 0, r.stderr
            assert "enclave half: connected" in r.stdout
            assert "the enclave half is gone" not in host.stderr()
            assert host.stderr().count("control: link to the enclave half up") == 1
            if n == 1:
                wait_until(lambda: f"before its hello: {dropped}" in host.stderr(), 10,
                           f"the host half to drop the peer ({dropped})")
                # Then EOF: the host half closed it, having sent its HELLO at most (garbage
                # may be read and refused before the HELLO goes out), and nothing else.
                got = recv_all(s)
                assert got == b"" or len(got) == 4 + int.from_bytes(got[:4], "big"), got[:100]


# Each half sends all its rules in one HELLO of at most 64 KiB and 1024 rules: check-config
# refuses what does not fit, and whatever it accepts crosses the link.
def outbound_rules(n, name_len):
    return [(f"h{i:04d}." + "a" * (name_len - 6), 10000 + i, 20000 + i) for i in range(n)]


def check_config(qp, cfg):
    return harness.run([qp.binary, "check-config", str(cfg)])


def assert_linked_with(qp, cfg, nrules):
    enclave = qp.enclave(cfg, wait=False)
    host = qp.host(cfg, wait=False)
    qp.wait_linked(host, timeout=30)
    for p in (host, enclave):
        wait_until(lambda: f"half's rules match this one's ({nrules} rules)" in p.stderr(), 30,
                   f"{p.name} to say the {nrules} rules match", watch=[p])
    r = status(qp)
    assert r.returncode == 0, r.stderr
    assert "enclave half: connected" in r.stdout
    assert host.stderr().count("control: link to the enclave half up") == 1
    for p in (host, enclave):
        assert "protocol error" not in p.stderr() and "cannot send our hello" not in p.stderr()


@pytest.mark.timeout(120)
def test_a_hello_over_64_kib_is_refused_and_the_largest_accepted_config_links(qp):
    def fits(n):
        r = check_config(qp, qp.config(outbound=outbound_rules(n, 186), name=f"long{n}.toml"))
        return r.returncode == 0, r
    # About 300 rules with long hostnames fill a HELLO: 1 fits, 400 does not.
    assert fits(1)[0]
    ok, r = fits(400)
    assert not ok and r.returncode == 1
    assert "the control channel carries a hello of at most 65536 bytes" in r.stderr
    lo, hi = 1, 400
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid)[0] else (lo, mid)
    assert_linked_with(qp, qp.config(outbound=outbound_rules(lo, 186)), lo)


@pytest.mark.timeout(120)
def test_more_than_1024_rules_are_refused_and_1024_link(qp):
    r = check_config(qp, qp.config(outbound=outbound_rules(1025, 6)))
    assert r.returncode == 1
    assert r.stderr.endswith(": rule 1025 of 1025: the control channel carries at most 1024 "
                             "rules\n"), r.stderr
    cfg = qp.config(outbound=outbound_rules(1024, 6))
    assert check_config(qp, cfg).returncode == 0
    assert_linked_with(qp, cfg, 1024)
