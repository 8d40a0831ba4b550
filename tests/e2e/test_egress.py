"""Egress by policy: an application in the enclave reaches allowed destinations through the
enclave half's proxy (HTTP CONNECT, plain http:// in absolute form, SOCKS5), with no rule per
destination, and both halves enforce their own [egress] policy.

The host half runs in a namespace of its own (its /etc/hosts is /etc/netns/NAME/hosts) with a
veth link to a second namespace, the outside world, where an HTTPS server with a test CA's
certificate (made with the openssl CLI) and a plain HTTP server listen on 192.0.2.2 (TEST-NET-1,
only inside these namespaces). Clients are curl, in the enclave's namespace, which has loopback
only: the proxy on 127.0.0.1:3128 is its one way out.
"""

import os
import re
from pathlib import Path
import socket
import subprocess
import textwrap
import time

import pytest

from harness import PYTHON, free_tcp_port, recv_all, veth_link, wait_until

SERVER = "192.0.2.2"
PROXY_PORT = 3128
EGRESS_VSOCK = 8000
HOSTS = f"""127.0.0.1 localhost
{SERVER} api.qproxy.test
{SERVER} other.qproxy.test
{SERVER} hostdenied.qproxy.test
169.254.169.254 metadata.qproxy.test
127.0.0.1 loop.qproxy.test
192.0.2.1 self.qproxy.test
192.0.2.3 blackhole.qproxy.test
"""

SERVE = textwrap.dedent("""
    import http.server, ssl, sys, threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("hello %s %s via %s\\n" % (self.headers.get("Host"), self.path,
                    self.headers.get("Connection"))).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    ip, cert, key = sys.argv[1:4]
    plain = http.server.ThreadingHTTPServer((ip, 8080), H)
    tls = http.server.ThreadingHTTPServer((ip, 8443), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    tls.serve_forever()
""")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A test CA, and a certificate it signed for *.qproxy.test."""
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=qproxy test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=api.qproxy.test", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:api.qproxy.test,DNS:*.qproxy.test\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d


@pytest.fixture
def world(qp, certs, tmp_path):
    """(the host half's namespace, the world's), linked, with the servers running."""
    with veth_link(SERVER, HOSTS, blackholed=(3,)) as (host_ns, world_ns):
        script = tmp_path / "serve.py"
        script.write_text(SERVE)
        srv = qp.procs.start("https-server", [PYTHON, str(script), SERVER,
                                              str(certs / "server.pem"),
                                              str(certs / "server.key")], netns=world_ns)
        srv.wait_tcp(8443)
        srv.wait_tcp(8080)
        yield host_ns, world_ns


def egress_config(qp, allow, deny=(), name=None, extra=""):
    quoted = ",\n".join(f'  "{e}"' for e in allow)
    return qp.config(extra=f"[egress]\nvsock_port = {EGRESS_VSOCK}\nproxy_port = {PROXY_PORT}\n"
                     f"allow = [\n{quoted},\n]\n"
                     f"deny = [{', '.join(chr(34) + e + chr(34) for e in deny)}]\n{extra}",
                     name=name)


def start(qp, world, host_allow, enclave_allow=None, host_deny=(), enclave_deny=(),
          enclave_extra="", host_extra=""):
    host_ns, _ = world
    hcfg = egress_config(qp, host_allow, host_deny, name="host.toml", extra=host_extra)
    ecfg = egress_config(qp, enclave_allow or host_allow, enclave_deny, name="enclave.toml",
                         extra=enclave_extra)
    host = qp.host(hcfg, netns=host_ns)
    host.wait_unix(qp.vsock_path(3, EGRESS_VSOCK))
    enclave = qp.enclave(ecfg)
    enclave.wait_tcp(PROXY_PORT)
    return host, enclave


def curl(netns, certs, *args):
    """curl in the enclave's namespace: (exit status, body, HTTP code of the last response)."""
    argv = netns.exec_argv(["curl", "-sS", "--max-time", "20", "--cacert",
                            str(certs / "ca.pem"), "-w", "\\n%{http_code}", *args])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return r.returncode, body.rstrip("\n"), code, r.stderr


def socks_reply(rc, err):
    """The SOCKS5 reply code curl failed on: 'Can't complete SOCKS5 connection to X. (N)'."""
    m = re.search(r"SOCKS5 connection to \S+ \((\d+)\)", err)
    assert rc == 97 and m, err
    return int(m.group(1))


def egress_rows(qp):
    """The egress view of `qproxy status`: one list of fields per destination and half
    (DESTINATION HALF OPEN TOTAL DENIED UP DOWN REFUSED)."""
    r = subprocess.run([qp.binary, "status", "--status-socket", str(qp.status_socket())],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = [i for i, l in enumerate(lines) if l.startswith("EGRESS (busiest first)")]
    assert at, r.stdout
    return [l.split() for l in lines[at[0] + 1:] if l.strip()]


PROXY = f"http://127.0.0.1:{PROXY_PORT}"
SOCKS = f"socks5h://127.0.0.1:{PROXY_PORT}"
API = "api.qproxy.test"


@pytest.mark.timeout(90)
def test_https_by_name_through_connect_and_socks5(qp, netns, world, certs):
    host, enclave = start(qp, world, [f"{API}:8443", f"{API}:8080"])
    # Without the proxy the enclave reaches nothing.
    rc, _, _, _ = curl(netns, certs, f"https://{API}:8443/")
    assert rc != 0
    for proxy in (PROXY, SOCKS):
        rc, body, code, err = curl(netns, certs, "-x", proxy, f"https://{API}:8443/x?y")
        assert (rc, code) == (0, "200"), err
        assert body == f"hello {API}:8443 /x?y via None"  # TLS checked end to end, by name
    # Plain http:// in absolute form: rewritten to origin form, one request a connection.
    rc, body, code, err = curl(netns, certs, "-x", PROXY, f"http://{API}:8080/plain")
    assert (rc, code) == (0, "200"), err
    assert body == f"hello {API}:8080 /plain via close"
    # Each half wrote its audit lines: the destination, the rule, the address, the bytes.
    wait_until(lambda: host.stderr().count("closed;") >= 3, 10, "the host half's close lines")
    log = host.stderr()
    assert f'egress {API}:8443 ({SERVER}:8443): connected, allowed by "{API}:8443" (line 5)' \
        in log
    assert f"egress {API}:8443 ({SERVER}:8443): closed;" in log
    elog = enclave.stderr()
    assert f'-> {API}:8443: allowed by "{API}:8443" (line 5); asking the host half' in elog
    assert f"-> {API}:8443: connected; the host half reached {SERVER}:8443" in elog
    # qproxy status: per destination, the busiest first, with the bytes of each.
    rows = egress_rows(qp)
    assert [r[:5] for r in rows] == [[f"{API}:8443", "host", "0", "2", "0"],
                                     [f"{API}:8080", "host", "0", "1", "0"],
                                     [f"{API}:8443", "enclave", "0", "2", "0"],
                                     [f"{API}:8080", "enclave", "0", "1", "0"]]
    assert all(int(r[5]) > 0 and int(r[6]) > 0 for r in rows)


def test_denied_by_the_enclave_policy(qp, netns, world, certs):
    host, enclave = start(qp, world, [f"{API}:8080", "other.qproxy.test:8080"],
                          enclave_allow=[f"{API}:8080"])
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://other.qproxy.test:8080/")
    assert code == "403"
    assert body == "denied: no allow entry matches"
    # SOCKS5 reply 2, "not allowed by ruleset", which curl reports by its number.
    rc, _, _, err = curl(netns, certs, "-x", SOCKS, "https://other.qproxy.test:8443/")
    assert socks_reply(rc, err) == 2
    assert "WARN" in [l.split()[1] for l in enclave.stderr().splitlines()
                      if "other.qproxy.test:8080: denied" in l]
    own = [l for l in host.stderr().splitlines() if "[enclave]" not in l]
    assert not [l for l in own if "other.qproxy.test" in l]  # never asked
    # qproxy status shows the enclave half's denials, which the host half never saw.
    rows = egress_rows(qp)
    assert ["other.qproxy.test:8080", "enclave", "0", "1", "1", "0", "0", "0"] in rows
    assert not [r for r in rows if r[0].startswith("other.") and r[1] == "host"]


def test_denied_by_the_host_policy_where_the_enclave_allows(qp, netns, world, certs):
    host, _ = start(qp, world, [f"{API}:8080"], enclave_allow=[f"{API}:8080", "*.qproxy.test:*"],
                    host_deny=["hostdenied.qproxy.test:*"])
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://hostdenied.qproxy.test:8080/")
    assert code == "403"
    assert body == ('host half: denied: "hostdenied.qproxy.test:*" (line 7) denies it')
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://other.qproxy.test:8080/")
    assert (code, body) == ("403", "host half: denied: no allow entry matches")
    log = host.stderr()
    assert "WARN  c1 egress hostdenied.qproxy.test:8080: denied:" in log
    rows = egress_rows(qp)
    # Each half counts it denied: the host half denied it, the enclave half's client was.
    assert ["hostdenied.qproxy.test:8080", "host", "0", "1", "1", "0", "0", "0"] in rows
    assert ["hostdenied.qproxy.test:8080", "enclave", "0", "1", "1", "0", "0", "0"] in rows


def test_metadata_and_special_addresses(qp, netns, world, certs):
    """169.254.169.254 is refused even under an allow entry that covers all addresses, by
    IP literal (denied) and by a name that resolves there (refused); so is loopback."""
    allow = ["0.0.0.0/0:80", "*.qproxy.test:80", f"{SERVER}:8080"]
    host, _ = start(qp, world, allow)
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://169.254.169.254/latest/")
    assert code == "403"
    assert body == ("host half: denied: address 169.254.169.254:80 is link-local, and no "
                    "allow entry names it")
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://metadata.qproxy.test/")
    assert code == "502"
    assert body == ("host half: refused: address 169.254.169.254:80 is link-local, and no "
                    "allow entry names it")
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://loop.qproxy.test/")
    assert (code, body) == ("502", "host half: refused: address 127.0.0.1:80 is loopback, "
                                   "and no allow entry names it")
    # The host half's own address, on its veth: no name leads back to the parent itself.
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://self.qproxy.test/")
    assert (code, body) == ("502", "host half: refused: address 192.0.2.1:80 is this host's "
                                   "own, and no allow entry names it")
    # The same world server by address, which 0.0.0.0/0 does not cover on 8080 but its own
    # entry does: the address rules are per address, not a blanket refusal.
    rc, body, code, err = curl(netns, certs, "-x", PROXY, f"http://{SERVER}:8080/")
    assert (rc, code) == (0, "200"), err


def test_name_that_does_not_resolve_and_a_closed_port(qp, netns, world, certs):
    start(qp, world, ["nosuch.qproxy.test:80", f"{API}:9999"])
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://nosuch.qproxy.test/")
    assert code == "502"
    assert body.startswith("host half: no such name: resolve nosuch.qproxy.test: ")
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, f"http://{API}:9999/")
    assert (code, body) == ("502", f"host half: refused: connect {SERVER}:9999: "
                                   "Connection refused")
    # SOCKS5: 4, host unreachable; 5, connection refused.
    rc, _, _, err = curl(netns, certs, "-x", SOCKS, "http://nosuch.qproxy.test/")
    assert socks_reply(rc, err) == 4
    rc, _, _, err = curl(netns, certs, "-x", SOCKS, f"http://{API}:9999/")
    assert socks_reply(rc, err) == 5


def test_a_silent_address_times_out(qp, netns, world, certs):
    """connect_timeout on the host half: a blackholed address is a timeout, 504 / SOCKS5 4."""
    start(qp, world, ["blackhole.qproxy.test:80"], host_extra="connect_timeout = 1\n")
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, "http://blackhole.qproxy.test/")
    assert code == "504"
    # strerror(ETIMEDOUT): "Connection timed out" (glibc), "Operation timed out" (musl).
    assert re.fullmatch(r"host half: timeout: connect 192\.0\.2\.3:80: \w+ timed out", body)
    rc, _, _, err = curl(netns, certs, "-x", SOCKS, "http://blackhole.qproxy.test/")
    assert socks_reply(rc, err) == 4


def test_garbage_to_the_proxy_and_the_egress_port(qp, netns, world, certs):
    host, enclave = start(qp, world, [f"{API}:8080"])
    junk = [b"\x05", b"\x05\x01\x02", b"\x05\x01\x00\x05\x09\x00\x01",
            b"GET / HTTP/1.1\r\n\r\n", b"CONNECT x HTTP/1.1\r\n\r\n", os.urandom(20000),
            b"A" * 9000]
    for j in junk:
        with netns.connect("127.0.0.1", PROXY_PORT) as s:
            s.settimeout(15)
            try:
                s.sendall(j)
                s.shutdown(socket.SHUT_WR)
                recv_all(s)
            except OSError:
                pass  # refused and reset before all of it was sent or read: fine
    with netns.connect("127.0.0.1", PROXY_PORT) as s:  # the bound, 8192 bytes: 431
        s.settimeout(15)
        s.sendall(b"GET http://x/ HTTP/1.1\r\nX: " + b"a" * (8192 - 27))
        assert recv_all(s).startswith(b"HTTP/1.1 431 ")
    path = str(qp.vsock_path(3, EGRESS_VSOCK))
    # Each read whole by the host half, so that its reply is not lost to a reset.
    frames = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x05\xa1\x01\x02\x03\x04",
              b"\x00\x00\x00\x03\xa1\x01\x01", b"\x00\x00\x04\x00" + os.urandom(1024), b""]
    for f in frames:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(15)
        s.connect(path)
        s.sendall(f)
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s)
        s.close()
        # A refusal the enclave half would understand: a frame saying "bad request" (5).
        assert reply[4:8] == b"\xa4\x01\x05\x02", (f, reply)
    rc, body, code, err = curl(netns, certs, "-x", PROXY, f"http://{API}:8080/after")
    assert (rc, code) == (0, "200"), err
    assert host.alive() and enclave.alive()
    assert "bad request" in host.stderr()


@pytest.fixture
def enclave_resolv(netns):
    """The enclave namespace's resolv.conf: `ip netns exec` mounts /etc/netns/NAME/resolv.conf
    over /etc/resolv.conf for every process started in it, so the enclave half writes that
    file by its own path, and the clients read it as /etc/resolv.conf."""
    d = Path("/etc/netns") / netns.name
    d.mkdir(parents=True, exist_ok=True)
    path = d / "resolv.conf"
    path.write_text("# the enclave's own\nnameserver 192.0.2.53\noptions timeout:1\n")
    return path


def dig(netns, *args):
    r = subprocess.run(netns.exec_argv(["dig", "@127.0.0.1", "+time=5", "+tries=1", *args]),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    status = re.search(r"status: (\w+)", r.stdout).group(1)
    answers = re.findall(r"^\S+\s+\d+\s+IN\s+(\w+)\s+(\S+)$", r.stdout, re.M)
    return status, answers


@pytest.mark.timeout(90)
def test_dns_mode_needs_no_proxy_settings(qp, netns, world, certs, enclave_resolv):
    """dns = true: curl and Python's urllib reach the HTTPS server by name, TLS checked, with
    no proxy variables; dig sees A, empty AAAA, NXDOMAIN for a denied name, over UDP and TCP."""
    allow = [f"{API}:8443", f"{API}:8080", "*.any.qproxy.test:*"]
    host, enclave = start(qp, world, allow, enclave_extra=f'dns = true\nresolv_conf = '
                          f'"{enclave_resolv}"\n')
    enclave.wait_tcp(53)
    text = enclave_resolv.read_text()
    assert text.startswith("# BEGIN qproxy") and "nameserver 127.0.0.1\n" in text
    assert "nameserver 192.0.2.53\n" in text  # the file's own lines are kept

    status, answers = dig(netns, API, "A")
    assert (status, answers) == ("NOERROR", [("A", "127.100.0.1")])
    assert dig(netns, API.upper() + ".", "A") == ("NOERROR", [("A", "127.100.0.1")])  # stable
    assert dig(netns, "+tcp", API, "A") == ("NOERROR", [("A", "127.100.0.1")])
    assert dig(netns, API, "AAAA") == ("NOERROR", [])
    assert dig(netns, "other.qproxy.test", "A") == ("NXDOMAIN", [])
    assert dig(netns, "+tcp", "other.qproxy.test", "AAAA") == ("NXDOMAIN", [])
    # A wildcard on ports "*" gives no port to listen on: the proxy's, not the DNS mode's.
    assert dig(netns, "x.any.qproxy.test", "A") == ("NXDOMAIN", [])
    assert "egress dns other.qproxy.test: denied" in enclave.stderr()
    for _ in range(5):  # a resolver's retries, an app that keeps asking: not a line each
        assert dig(netns, "Other.qproxy.test", "A") == ("NXDOMAIN", [])
    said = [l for l in enclave.stderr().splitlines() if "other.qproxy.test: denied" in l.lower()]
    assert len(said) == 1, said
    assert said[0].endswith("; repeats are said once a minute at most"), said

    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    r = subprocess.run(netns.exec_argv(["curl", "-sS", "--max-time", "20", "--cacert",
                                        str(certs / "ca.pem"), f"https://{API}:8443/dns"]),
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"hello {API}:8443 /dns via None\n"
    code = ("import ssl, sys, urllib.request\n"
            "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
            "print(urllib.request.urlopen(sys.argv[2], context=ctx, timeout=20).read().decode(),"
            " end='')\n")
    r = subprocess.run(netns.exec_argv([PYTHON, "-c", code, str(certs / "ca.pem"),
                                        f"https://{API}:8443/urllib"]),
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"hello {API}:8443 /urllib via close\n"  # urllib sends its own
    # Plain http on the other allowed port, at the same address.
    r = subprocess.run(netns.exec_argv(["curl", "-sS", "--max-time", "20",
                                        f"http://{API}:8080/plain"]),
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.stdout == f"hello {API}:8080 /plain via None\n", r.stderr
    log = host.stderr()
    assert f'egress dns 127.0.0.1:' in log and f"-> {API}:8443: connected" in log
    # Garbage to the DNS server: it answers the next query all the same.
    with netns.sockets(1, socket.AF_INET, socket.SOCK_DGRAM)[0] as u:
        for junk in (b"", b"\x00" * 11, os.urandom(512), b"\xff" * 4096):
            u.sendto(junk, ("127.0.0.1", 53))
    assert dig(netns, API, "A") == ("NOERROR", [("A", "127.100.0.1")])
    assert enclave.alive()


@pytest.mark.timeout(60)
def test_silent_clients_are_answered_at_their_deadline(qp, netns, world, certs):
    """A proxy client that sends half a head, and a peer on the egress vsock port that sends
    half a frame, each get a refusal naming the deadline and a close; meanwhile others are
    served."""
    host, enclave = start(qp, world, [f"{API}:8080"])
    c = netns.connect("127.0.0.1", PROXY_PORT)
    c.sendall(b"CONNECT api.qproxy.test:8080 HTTP/1.1\r\n")
    v = socket.socket(socket.AF_UNIX)
    v.connect(str(qp.vsock_path(3, EGRESS_VSOCK)))
    v.sendall(b"\x00\x00\x00\x20\xa2")
    rc, body, code, err = curl(netns, certs, "-x", PROXY, f"http://{API}:8080/meanwhile")
    assert (rc, code) == (0, "200"), err
    for s in (c, v):
        s.settimeout(30)
    assert recv_all(c).endswith(b"\r\n\r\nno whole request within 10 s\n")
    reply = recv_all(v)
    assert reply[4:8] == b"\xa4\x01\x05\x02" and b"no whole request within 5 s" in reply
    c.close()
    v.close()
    assert "no whole request within 10 s" in enclave.stderr()
    assert "egress request: bad request: no whole request within 5 s" in host.stderr()


@pytest.mark.parametrize("where", ["host", "enclave", "port"])
def test_an_egress_mismatch_is_named_when_the_halves_link(qp, netns, where):
    """The halves compare [egress]'s vsock_port when they link, as they compare rules: the
    enclave half's egress goes to its port, which the host half must listen on. Both log
    the difference; curl through the proxy then fails as the line says it will."""
    hp = free_tcp_port()
    inbound = [(hp, 6000, 9000)]
    egress = f"[egress]\nvsock_port = {EGRESS_VSOCK}\nproxy_port = {PROXY_PORT}\n" \
             f"allow = [\"{API}:8080\"]\n"
    other = egress.replace(f"vsock_port = {EGRESS_VSOCK}", f"vsock_port = {EGRESS_VSOCK + 1}")
    hcfg, ecfg = {"host": ("", egress), "enclave": (egress, ""), "port": (egress, other)}[where]
    host = qp.host(qp.config(inbound=inbound, extra=hcfg, name="host.toml"))
    enclave = qp.enclave(qp.config(inbound=inbound, extra=ecfg, name="enclave.toml"))
    want = {
        "host": f"config mismatch: the enclave has [egress] on vsock_port {EGRESS_VSOCK}, the "
                "host does not: the host half refuses the enclave's egress",
        "enclave": f"config mismatch: the host has [egress] on vsock_port {EGRESS_VSOCK}, the "
                   "enclave does not",
        "port": f"config mismatch: [egress]: vsock_port is {EGRESS_VSOCK} in the host's config, "
                f"{EGRESS_VSOCK + 1} in the enclave's: the host half refuses the enclave's egress",
    }[where]
    for p in (host, enclave):
        wait_until(lambda: f"WARN  control: {want}" in p.stderr(), 10,
                   f"the {p.name} half naming the mismatch", watch=[host, enclave])
        assert "rules match" not in p.stderr()
    if where != "enclave":
        r = subprocess.run(netns.exec_argv(["curl", "-sS", "--max-time", "10", "-o",
                                            "/dev/null", "-w", "%{http_code}", "-x", PROXY,
                                            f"http://{API}:8080/"]),
                           capture_output=True, text=True, timeout=30)
        assert r.stdout == "502", (r.stdout, r.stderr)
        wait_until(lambda: "is the host half running, with [egress] in its config?"
                   in enclave.stderr(), 10, "the enclave half's reason", watch=[enclave])


def tunnel(netns, dest):
    """A CONNECT tunnel through the enclave's proxy, held open: the socket, once the
    proxy said 200 (or the status line it said instead, and the socket closed)."""
    s = netns.sockets(1)[0]
    s.settimeout(10)
    s.connect(("127.0.0.1", PROXY_PORT))
    s.sendall(f"CONNECT {dest} HTTP/1.1\r\nHost: {dest}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, f"the proxy closed the tunnel to {dest}: {head!r}"
        head += chunk
    status = head.split(b"\r\n")[0].decode()
    if status != "HTTP/1.1 200 Connection established":
        s.close()
        return status
    return s


@pytest.mark.parametrize("half", ["host", "enclave"])
def test_max_connections_in_either_half(qp, netns, world, certs, half):
    """[egress] max_connections: each half holds at most that many egress connections open;
    one more is answered 503 (SOCKS5: general failure) naming the half, the refusals are
    said at most once a second, and closing one lets the next in."""
    limit = "max_connections = 2\n"
    host, enclave = start(qp, world, [f"{API}:8080"], host_extra=limit * (half == "host"),
                          enclave_extra=limit * (half == "enclave"))
    held = [tunnel(netns, f"{API}:8080") for _ in range(2)]
    assert all(isinstance(t, socket.socket) for t in held), held
    why = f"max_connections 2 open in the {half} half"
    if half == "host":
        why = f"host half: busy: {why}"
    rc, body, code, _ = curl(netns, certs, "-x", PROXY, f"http://{API}:8080/third")
    assert (code, body) == ("503", why)
    rc, _, _, err = curl(netns, certs, "-x", SOCKS, f"http://{API}:8080/fourth")
    assert socks_reply(rc, err) == 1
    # qproxy status counts both refusals in the half that made them, by destination.
    rows = {(r[0], r[1]): r for r in egress_rows(qp)}
    assert rows[(f"{API}:8080", half)][7] == "2"
    assert all(r[7] == "0" for k, r in rows.items() if k[1] != half)
    said = host if half == "host" else enclave
    own = [l for l in said.stderr().splitlines() if "[enclave]" not in l and "refused" in l]
    assert len(own) == 1, own  # the second within the second is counted, not said
    assert "max_connections 2 open; 1 refused since last said" in own[0], own
    # A tunnel still carries bytes; once closed, its place is free.
    held[0].sendall(f"GET /in HTTP/1.1\r\nHost: {API}:8080\r\n\r\n".encode())
    assert held[0].recv(4096).startswith(b"HTTP/1.0 200")
    held[0].close()
    wait_until(lambda: curl(netns, certs, "-x", PROXY, f"http://{API}:8080/again")[2] == "200",
               10, "a place free again")
    if half == "host":
        # Connections that never send their request count too: past twice the limit (one
        # tunnel and three silent ones here) the host half closes the next at once.
        silent = [socket.socket(socket.AF_UNIX) for _ in range(4)]
        time.sleep(1.1)  # past the second whose refusals were said above
        for s in silent:
            s.settimeout(10)
            s.connect(str(qp.vsock_path(3, EGRESS_VSOCK)))
        assert silent[3].recv(1) == b""
        wait_until(lambda: "closed a connection at once, before its request" in host.stderr(),
                   5, "the host half saying so", watch=[host])
        for s in silent[:3]:  # the others wait for their request, 5 s at most
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
            s.close()
    held[1].close()


@pytest.mark.parametrize("half", ["host", "enclave"])
def test_idle_timeout_in_either_half(qp, netns, world, certs, half):
    """[egress] idle_timeout: a tunnel carrying a byte now and then stays; once silent for
    idle_timeout, the half that has the limit closes it, plainly (the client reads EOF,
    not a reset), and says why."""
    limit = "idle_timeout = 1\n"
    host, enclave = start(qp, world, [f"{API}:8080"], host_extra=limit * (half == "host"),
                          enclave_extra=limit * (half == "enclave"))
    t = tunnel(netns, f"{API}:8080")
    assert isinstance(t, socket.socket), t
    t.sendall(b"GET /slow HTTP/1.1\r\n")
    for i in range(5):  # 2 s, a header line every 0.4 s: never idle for 1 s
        time.sleep(0.4)
        t.sendall(b"X-Slow: %d\r\n" % i)
    t.setblocking(False)
    with pytest.raises(BlockingIOError):
        t.recv(1)  # still open
    t.setblocking(True)
    t.settimeout(10)
    assert t.recv(1) == b""
    t.close()
    said = host if half == "host" else enclave
    wait_until(lambda: "without a byte either way (idle_timeout 1 s)" in said.stderr(), 5,
               f"the {half} half saying why", watch=[host, enclave])
    other = enclave if half == "host" else host
    assert "idle_timeout" not in "\n".join(l for l in other.stderr().splitlines()
                                           if "[enclave]" not in l)
