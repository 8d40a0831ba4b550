"""The host half is not an open proxy: a connection on a rule's vsock port reaches that
rule's hostname:port and nothing else, whatever the client sends; the host half listens on
its configured ports, its control port and its status socket, and nowhere else; the status
socket is root's alone."""

import hashlib
import os
import socket
import stat
import struct

import pytest

from harness import free_tcp_port, recv_all, wait_until

SERVICES = ("A", "B")


def preambles(port):
    """Bytes a client might send hoping to be taken somewhere else: to 127.0.0.1:port."""
    return {
        "http-connect": b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port),
        "http-absolute": b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port),
        "host-port-line": b"127.0.0.1:%d\n" % port,
        "proxy-protocol": b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 %d\r\n" % port,
        "socks5": b"\x05\x01\x00" + b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port),
        "socks4": b"\x04\x01" + struct.pack(">H", port) + socket.inet_aton("127.0.0.1") + b"\x00",
    }


def whoami_answer(name, payload):
    return b"%s received %d bytes sha256 %s\n" % (name.encode(), len(payload),
                                                  hashlib.sha256(payload).hexdigest().encode())


def exchange(sock, payload):
    with sock:
        sock.settimeout(5)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


def only_control_frames(data):
    """True when data is nothing but whole control frames: a 4-byte length, then a CBOR map."""
    while data:
        if len(data) < 5:
            return False
        n = int.from_bytes(data[:4], "big")
        if len(data) < 4 + n or not 0xa0 <= data[4] <= 0xbf:
            return False
        data = data[4 + n:]
    return True


def unix_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect(str(path))
    except BaseException:
        s.close()
        raise
    return s


@pytest.fixture
def two_outbound(qp):
    """Two outbound rules to two servers that say who they are, and a third server on
    the same host that no rule names: what a hostile client would like to reach."""
    ports = {name: free_tcp_port() for name in SERVICES}
    servers = {name: qp.server("whoami", port, name, in_netns=False) for name, port in ports.items()}
    forbidden = free_tcp_port()
    servers["forbidden"] = qp.server("shutfirst", forbidden, in_netns=False)
    vports = {"A": 9001, "B": 9002}
    hp = free_tcp_port()
    qp.server("whoami", 6000, "APP")
    cfg = qp.config(inbound=[(hp, 6000, 9000)],
                    outbound=[("127.0.0.1", vports[n], ports[n]) for n in SERVICES])
    host = qp.host(cfg)
    enclave = qp.enclave(cfg)
    qp.wait_linked(host)
    return dict(cfg=cfg, host=host, enclave=enclave, ports=ports, vports=vports, hp=hp,
                servers=servers, forbidden=forbidden)


def test_each_outbound_rule_reaches_only_its_own_server(qp, netns, two_outbound):
    t = two_outbound
    n = 0
    for name in SERVICES:
        for label, pre in preambles(t["forbidden"]).items():
            payload = pre + os.urandom(1000)
            # As the enclave's application does: through the enclave half.
            got = exchange(netns.connect("127.0.0.1", t["ports"][name]), payload)
            assert got == whoami_answer(name, payload), f"rule {name}, {label}: {got[:200]!r}"
            # As anything on the vsock does: straight at the host half's listener.
            got = exchange(unix_connect(qp.vsock_path(3, t["vports"][name])), payload)
            assert got == whoami_answer(name, payload), f"vsock {name}, {label}: {got[:200]!r}"
            n += 2
        # Another rule's port named in the preamble changes nothing either.
        other = "B" if name == "A" else "A"
        for label, pre in preambles(t["ports"][other]).items():
            payload = pre + b"x"
            got = exchange(unix_connect(qp.vsock_path(3, t["vports"][name])), payload)
            assert got == whoami_answer(name, payload), f"vsock {name} naming {other}, {label}"
            n += 1
    # The inbound rule, likewise, only ever reaches its application in the enclave.
    for label, pre in preambles(t["forbidden"]).items():
        got = exchange(socket.create_connection(("127.0.0.1", t["hp"]), timeout=5), pre)
        assert got == whoami_answer("APP", pre), f"inbound, {label}: {got[:200]!r}"
        n += 1
    # The control port is no way through either: a preamble there is a protocol error.
    # (Each such peer is a candidate until its HELLO decodes: the enclave's link stays up.)
    for label, pre in preambles(t["forbidden"]).items():
        try:
            got = exchange(unix_connect(qp.vsock_path(3, 6666)), pre)
        except ConnectionResetError:
            got = b""
        assert only_control_frames(got), f"control port answered {label} with {got[:200]!r}"
    # Nothing ever reached the server no rule names: it would print a line per connection.
    own_closes = lambda: sum(1 for line in t["host"].stderr().splitlines()
                             if "closed;" in line and "[enclave]" not in line)
    wait_until(lambda: own_closes() >= n, 5, f"the host half to log {n} closed connections")
    assert t["servers"]["forbidden"].stdout() == ""
    assert t["host"].alive() and t["enclave"].alive()


def sockets_of(pid):
    """The inodes of the sockets pid holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def net_table(pid, name):
    """Rows of /proc/PID/net/NAME (the sockets of pid's network namespace) as field lists."""
    try:
        with open(f"/proc/{pid}/net/{name}") as f:
            return [line.split() for line in f.read().splitlines()[1:]]
    except FileNotFoundError:
        return []


def test_host_half_listens_only_where_configured(qp, two_outbound):
    t = two_outbound
    host = t["host"]
    mine = sockets_of(host.pid)
    found = set()
    tcp_listen = set()
    for table in ("tcp", "tcp6"):
        for f in net_table(host.pid, table):
            if int(f[9]) in mine:
                found.add(int(f[9]))
                if f[3] == "0A":
                    tcp_listen.add((table, f[1]))
    want_tcp = {("tcp", "00000000:%04X" % t["hp"])}  # 0.0.0.0:host_port, no IPv6
    assert tcp_listen == want_tcp, f"TCP listeners {tcp_listen}, expected {want_tcp}"
    for table in ("udp", "udp6", "raw", "raw6", "udplite", "udplite6"):
        for f in net_table(host.pid, table):
            assert int(f[9]) not in mine, f"the host half holds a {table} socket: {f}"
    unix_listen, unix_other = set(), []
    # An accepted Unix socket lives in its connecting peer's namespace: the control link
    # from the enclave half is listed in the enclave's table, not the host's.
    rows = net_table(host.pid, "unix") + net_table(t["enclave"].pid, "unix")
    for f in rows:
        if int(f[6]) in mine and int(f[6]) not in found:
            found.add(int(f[6]))
            path = f[7] if len(f) > 7 else "(unnamed)"
            if int(f[3], 16) & 0x10000:  # __SO_ACCEPTCON: listening
                unix_listen.add(path)
            else:
                unix_other.append(path)
    want_unix = {str(qp.vsock_path(3, p)) for p in (6666, *t["vports"].values())}
    want_unix.add(str(qp.status_socket()))
    assert unix_listen == want_unix, f"Unix listeners {unix_listen}, expected {want_unix}"
    # The one other socket is the control link, accepted on the control port.
    assert unix_other == [str(qp.vsock_path(3, 6666))], f"other Unix sockets: {unix_other}"
    assert found == mine, f"sockets of the host half in no table: {mine - found}"
    # The emulated vsock directory holds exactly the two halves' listeners.
    want_files = {f"3.{p}" for p in (6666, 9001, 9002)} | {"4.9000"}
    assert set(os.listdir(qp.vsock_dir)) == want_files
    # And nothing answers on a vsock port no rule names.
    with pytest.raises(FileNotFoundError):
        unix_connect(qp.vsock_path(3, 9003)).close()


def test_status_socket_is_root_only(qp, tmp_path):
    path = tmp_path / "qproxy" / "host.sock"  # as /run/qproxy/host.sock: the directory is new
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    host = qp.host(cfg, env={"QPROXY_STATUS_SOCKET": str(path)})
    host.wait_unix(path)
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()
    d = os.stat(path.parent)
    assert stat.S_IMODE(d.st_mode) == 0o700, f"{path.parent} is {oct(d.st_mode)}"


def test_status_socket_refuses_a_world_writable_directory(qp, tmp_path):
    # The directory exists already, writable by anyone: whoever can write there can put
    # their own socket in the status socket's place. qproxy must not serve from there as
    # if it were safe: either it refuses to start, or it takes the write bit away.
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    path = d / "host.sock"
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    host = qp.host(cfg, env={"QPROXY_STATUS_SOCKET": str(path)}, wait=False)
    wait_until(lambda: not host.alive() or os.path.exists(path), 5,
               "the host half to start or refuse", watch=())
    if not host.alive():
        assert host.returncode == 3, host.stderr()
        assert str(d) in host.stderr(), "the refusal should name the directory"
        return
    host.wait_unix(path)
    mode = stat.S_IMODE(os.stat(d).st_mode)
    assert not mode & 0o002, (f"the status socket is served from {d}, mode {oct(mode)}: "
                              "writable by anyone")
