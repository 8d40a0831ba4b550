"""The PROXY protocol: the host half names the client to the app in the enclave.

A real server that speaks it, nginx (`listen ... proxy_protocol`), runs in the enclave
namespace and logs `$proxy_protocol_addr:$proxy_protocol_port`: it must log the client's
real address and port, for v1 and v2. The host half listens on 0.0.0.0 (IPv4 only), so an
IPv6 client reaches it only through a load balancer: IPv6 is tested with
accept_proxy_protocol, a header from that load balancer naming an IPv6 client.
"""

import os
import re
import socket
import struct
import time

import pytest

from harness import closed_within, echo, free_tcp_port, recv_all, wait_until

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
REQUEST = b"GET / HTTP/1.0\r\nHost: app\r\n\r\n"
BODY = b"hello from nginx\n"


def v2_header(src, dst, sport, dport, local=False):
    """A v2 header from a load balancer: TCP over IPv4 or IPv6, or LOCAL."""
    if local:
        return V2_SIG + bytes([0x20, 0x00, 0, 0])
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    addrs = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + struct.pack(">HH", sport,
                                                                                   dport)
    return V2_SIG + bytes([0x21, 0x21 if fam == socket.AF_INET6 else 0x11]) + \
        struct.pack(">H", len(addrs)) + addrs


def start_rule(qp, keys, app="nginx", tmp_path=None):
    """Both halves with one inbound rule carrying keys (TOML lines), and the app behind it:
    nginx with proxy_protocol, or an echo server. Returns (host, host_port, access log)."""
    hp, ep, vp = free_tcp_port(), 6100, 9100
    cfg = qp.config(inbound=[(hp, ep, vp)])
    # Both halves read the same file, as users run them; only the host half acts on the keys.
    cfg.path.write_text(cfg.text.replace(f"vsock_port = {vp}\n", f"vsock_port = {vp}\n{keys}"))
    log = None
    if app == "nginx":
        log = start_nginx(qp, tmp_path, ep)
    else:
        qp.server("echo", ep)
    qp.enclave(cfg)
    host = qp.host(cfg)
    return host, hp, log


def start_nginx(qp, tmp_path, port):
    """nginx in the foreground, in the enclave namespace, with its own prefix and files."""
    d = tmp_path / "nginx"
    d.mkdir()
    temps = "\n".join(f"    {k}_temp_path {d}/{k};"
                      for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (d / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format pp '$proxy_protocol_addr:$proxy_protocol_port';
    access_log {d}/access.log pp;
{temps}
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        location / {{ return 200 "{BODY.decode().strip()}\\n"; }}
    }}
}}
""")
    p = qp.procs.start("nginx", ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"),
                                 "-e", str(d / "error.log")], netns=qp.netns)
    p.wait_tcp(port)
    return d / "access.log"


def logged(log, n):
    """The access log's lines once it has n."""
    def lines():
        return log.read_text().splitlines() if log.exists() else []
    wait_until(lambda: len(lines()) >= n, 5, f"{n} lines in nginx's access log")
    return lines()


def client(hp, src="127.0.0.1"):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", hp))
    return s


def http(s, preamble=b""):
    with s:
        s.sendall(preamble + REQUEST)
        reply = recv_all(s)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(BODY), reply


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_nginx_logs_the_clients_real_address(qp, tmp_path, version):
    host, hp, log = start_rule(qp, f'proxy_protocol = "{version}"\n', tmp_path=tmp_path)
    want = []
    # Two clients from two addresses: each logged as itself, not as one constant.
    for src in ("127.0.0.5", "127.0.0.9"):
        s = client(hp, src)
        want.append("%s:%d" % s.getsockname())
        http(s)
    assert logged(log, 2) == want
    assert f"inbound {hp}: {want[0]} -> vsock 4:9100: connected" in host.stderr()


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("lb", ["v1", "v2"])
def test_an_ipv6_client_behind_a_load_balancer(qp, tmp_path, version, lb):
    host, hp, log = start_rule(qp, f'proxy_protocol = "{version}"\naccept_proxy_protocol = true\n',
                          tmp_path=tmp_path)
    if lb == "v1":
        header = b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n"
    else:
        header = v2_header("2001:db8::7", "2001:db8::1", 4242, 443)
    s = client(hp)
    lb_addr = "%s:%d" % s.getsockname()
    # Header and request in one write: the bytes behind the header must reach nginx too.
    http(s, header)
    assert logged(log, 1) == ["2001:db8::7:4242"]
    assert f"inbound {hp}: [2001:db8::7]:4242 via {lb_addr} -> vsock 4:9100: connected" in \
        host.stderr()


def test_the_original_client_is_passed_on(qp, tmp_path):
    host, hp, log = start_rule(qp, 'proxy_protocol = "v2"\naccept_proxy_protocol = true\n',
                          tmp_path=tmp_path)
    # A slow load balancer: its header in three pieces.
    s = client(hp)
    for piece in (b"PROX", b"Y TCP4 203.0.113.7 198.51", b".100.1 51000 443\r\n"):
        s.sendall(piece)
        time.sleep(0.1)
    http(s)
    # v2 LOCAL (a health check): the connection's real addresses stand.
    s = client(hp, "127.0.0.6")
    real = "%s:%d" % s.getsockname()
    http(s, v2_header(None, None, 0, 0, local=True))
    assert logged(log, 2) == ["203.0.113.7:51000", real]
    assert re.search(r"inbound %d: 203\.0\.113\.7:51000 via 127\.0\.0\.1:\d+ -> vsock" % hp,
                     host.stderr())


def test_a_bad_header_is_refused_with_one_line(qp, tmp_path):
    host, hp, log = start_rule(qp, 'proxy_protocol = "v1"\naccept_proxy_protocol = true\n',
                          tmp_path=tmp_path)
    bad = [(REQUEST, "not a PROXY header"),
           (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", "v1: bad source port"),
           (b"PROXY TCP4 " + b"1" * 200, "v1: no CRLF within 107 bytes"),
           (V2_SIG + b"\x21\x11\xff\xff", "v2: longer than 536 bytes")]
    for data, why in bad:
        s = client(hp)
        peer = "%s:%d" % s.getsockname()
        with s:
            s.sendall(data)
            how, _ = closed_within(s, 3)
        assert how is not None, f"{data[:20]!r}: still open"
        line = f"inbound {hp}: {peer} -> vsock 4:9100: PROXY header: {why}"
        wait_until(lambda: line in host.stderr(), 5, f"the log line {line!r}")
        assert [x for x in host.stderr().splitlines() if line in x][0].split()[1] == "WARN"
    # One line each, and nothing reached the app.
    assert host.stderr().count("PROXY header:") == len(bad)
    assert not log.exists() or log.read_text() == ""
    # The rule goes on serving.
    http(client(hp), b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n")
    assert logged(log, 1) == ["192.0.2.1:1"]


@pytest.mark.timeout(60)
def test_a_silent_client_is_closed_at_the_deadline(qp, tmp_path):
    host, hp, _ = start_rule(qp, 'accept_proxy_protocol = true\n', app="echo")
    s = client(hp)
    peer = "%s:%d" % s.getsockname()
    with s:
        how, elapsed = closed_within(s, 10)
    assert how is not None and 4.5 <= elapsed <= 7, (how, elapsed)
    assert f"inbound {hp}: {peer} -> vsock 4:9100: PROXY header: none within 5 s" in \
        host.stderr()
    # A header that stops half way is given the same deadline.
    s = client(hp)
    with s:
        s.sendall(b"PROXY TCP4 1.2.3.4")
        how, elapsed = closed_within(s, 10)
    assert how is not None and 4.5 <= elapsed <= 7, (how, elapsed)


def test_bytes_behind_the_header_keep_their_order(qp):
    """Through an echo server, what comes back is our header and then every client byte,
    those that came in the load balancer's first write included."""
    host, hp, _ = start_rule(qp, 'proxy_protocol = "v1"\naccept_proxy_protocol = true\n', app="echo")
    payload = os.urandom(1 << 20)
    header = v2_header("198.51.100.9", "192.0.2.80", 40000, 80)

    def conn():
        return client(hp)
    got = echo(conn, header + payload)
    assert got == b"PROXY TCP4 198.51.100.9 192.0.2.80 40000 80\r\n" + payload
    wait_until(lambda: "closed; %d bytes up" % len(payload) in host.stderr(), 5,
               "the close line to count the client's bytes")


def test_without_the_keys_nothing_is_prepended(qp):
    """No proxy_protocol: the app sees exactly the client's bytes; and without
    accept_proxy_protocol a PROXY header from the client is just bytes."""
    host, hp, _ = start_rule(qp, "", app="echo")
    payload = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + os.urandom(5000)
    assert echo(hp, payload) == payload
    assert echo(hp, b"x") == b"x"
    assert "PROXY header" not in host.stderr()
