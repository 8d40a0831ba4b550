"""Faults while traffic flows: a half killed and restarted, a far end that resets or stalls,
a client that never reads or never writes, SIGTERM mid-transfer. Each ends promptly,
leaks nothing, and holds memory bounded whatever the peers do.

Memory is VmRSS from /proc/PID/status, sampled every 20 ms while the fault lasts.
"""

import fcntl
import hashlib
import os
import select
import signal
import socket
import struct
import termios
import threading
import time

import pytest

from harness import (RELAY_PIPE, Tracee, closed_within, echo, free_tcp_port, pipe_state,
                     pipes_of, recv_all, recv_exactly, rss_kib, sanitized, wait_until)

# servers.py's PATTERN (64 KiB): the byte at stream offset i is i % 256. Twice, so that
# any 64 KiB window can be sliced out of it without wrapping.
PATTERN = bytes(range(256)) * 256
PATTERN2 = PATTERN * 2
MiB = 1 << 20
RSS_LIMIT_KIB = 32 * 1024


def pattern_at(offset, n):
    """The n (<= 64 KiB) pattern bytes at stream offset."""
    start = offset % len(PATTERN)
    return PATTERN2[start:start + n]


def fd_list(pid):
    out = []
    try:
        for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
            try:
                out.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
            except OSError:
                pass
    except OSError:
        pass
    return " ".join(out)


def wait_fds(halves, want, timeout, what):
    """Until each half holds exactly want[name] fds; the failure lists what it holds."""
    for p in halves:
        wait_until(lambda: p.nfds() == want[p.name], timeout,
                   f"{p.name} to hold {want[p.name]} fds {what} (has {p.nfds()}: "
                   f"{fd_list(p.pid)})", watch=halves)


def sysctl_int(name, field=-1):
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return int(f.read().split()[field])


class Sampler:
    """Samples VmRSS of some processes every 20 ms on a thread; keeps the first sample
    and the peak of each."""

    def __init__(self, procs):
        self.procs = list(procs)
        self.start = {p.name: rss_kib(p.pid) for p in self.procs}
        self.peak = dict(self.start)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            for p in self.procs:
                self.peak[p.name] = max(self.peak[p.name], rss_kib(p.pid))

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)

    def assert_bounded(self, binary, limit_kib=RSS_LIMIT_KIB):
        for name, kib in self.peak.items():
            grew = kib - self.start[name]
            assert grew < limit_kib, (f"{name}: RSS grew by {grew} KiB (from {self.start[name]} "
                                      f"to {kib}), limit {limit_kib} KiB")
            if not sanitized(binary):
                assert kib < limit_kib, f"{name}: peak RSS {kib} KiB, limit {limit_kib} KiB"


class Stream:
    """A client pushing PATTERN through an echo server and checking every byte that comes
    back, on two threads, until the connection ends, stop() is called, or its bounds
    (max_bytes sent, max_seconds) are reached. end is (how, time.monotonic()) with how one
    of 'eof', 'reset', 'timeout' or an error's repr."""

    def __init__(self, sock, max_bytes=1 << 30, max_seconds=30):
        self.sock = sock
        self.sock.settimeout(10)
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + max_seconds
        self.sent = 0
        self.received = 0
        self.end = None
        self.corrupt = None
        self._stop = threading.Event()
        self._tx = threading.Thread(target=self._send, daemon=True)
        self._rx = threading.Thread(target=self._recv, daemon=True)
        self._tx.start()
        self._rx.start()

    def _send(self):
        try:
            while (not self._stop.is_set() and self.sent < self.max_bytes
                   and time.monotonic() < self.deadline):
                self.sent += self.sock.send(pattern_at(self.sent, len(PATTERN)))
        except OSError:
            pass  # the reader says how the connection ended

    def _recv(self):
        how = None
        while how is None:
            try:
                d = self.sock.recv(len(PATTERN))
            except socket.timeout:
                how = "timeout"
                break
            except (ConnectionResetError, BrokenPipeError):
                how = "reset"
                break
            except OSError as e:
                how = repr(e)
                break
            if not d:
                how = "eof"
                break
            if d != pattern_at(self.received, len(d)) and self.corrupt is None:
                self.corrupt = self.received
            self.received += len(d)
        self.end = (how, time.monotonic())

    def wait_received(self, n, timeout=10):
        wait_until(lambda: self.received >= n or self.end, timeout,
                   f"{n} bytes echoed (have {self.received})")
        assert self.end is None, f"connection ended early: {self.end[0]}"

    def join(self, timeout):
        self._rx.join(timeout)
        return self.end

    def close(self):
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._tx.join(12)
        self._rx.join(12)
        self.sock.close()


def echo_once(connect, payload=b"ping"):
    return echo(connect, payload) == payload


def works(connect, payload=b"ping"):
    """One echo round trip, False on any error: for polling until service is back."""
    try:
        return echo_once(connect, payload)
    except (OSError, AssertionError):
        return False


def fake_enclave_connect(qp, vsock_port, timeout=5):
    """Connect to the host half's (emulated) vsock listener the way the enclave half does."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(str(qp.vsock_path(3, vsock_port)))
    except BaseException:
        s.close()
        raise
    return s


def inbound_connect(port):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=5)


def outbound_connect(netns, port):
    return lambda: netns.connect("127.0.0.1", port)


def assert_closed_promptly(streams, t_fault, what, limit=1.0):
    for i, st in enumerate(streams):
        end = st.join(limit + 5)
        assert end is not None, f"stream {i}: still open {limit + 5:.0f} s after {what}"
        how, t = end
        assert how in ("eof", "reset"), f"stream {i}: ended by {how} after {what}"
        assert t - t_fault <= limit, (f"stream {i}: closed {t - t_fault:.2f} s after {what}, "
                                      f"more than {limit} s")
        assert st.corrupt is None, f"stream {i}: wrong byte at offset {st.corrupt}"


def both_rules(qp):
    """An inbound and an outbound rule, each to an echo server."""
    hp, op = free_tcp_port(), free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)], outbound=[("127.0.0.1", 9001, op)])
    qp.server("echo", 6000)
    qp.server("echo", op, in_netns=False)
    return cfg, hp, op


def test_enclave_half_killed_mid_transfer(qp, netns):
    cfg, hp, op = both_rules(qp)
    enclave = qp.enclave(cfg)
    host = qp.host(cfg)
    qp.wait_linked(host)
    streams = [Stream(inbound_connect(hp)()) for _ in range(4)]
    try:
        for st in streams:
            st.wait_received(MiB)  # every transfer is under way
        enclave.signal(signal.SIGKILL)
        t_kill = time.monotonic()
        assert_closed_promptly(streams, t_kill, "the enclave half was killed")
    finally:
        for st in streams:
            st.close()
    enclave.wait(5)
    assert host.alive(), "the host half died with the enclave half"
    wait_until(lambda: "control: the enclave half is gone" in host.stderr(), 10,
               "the host half to notice the enclave half left")
    # The host half keeps serving: its outbound listener (its own side of the rule) still
    # takes a connection from the enclave's side and reaches the server...
    assert echo_once(lambda: fake_enclave_connect(qp, 9001), b"outbound while the enclave is away")
    # ...and its inbound listener still accepts, closing each client at once.
    with inbound_connect(hp)() as s:
        how, _ = closed_within(s, 1.0)
        assert how is not None, "inbound client left hanging while the enclave half is away"
    # The enclave half returns (over the socket files its predecessor left behind).
    qp.enclave(cfg, name="enclave2")
    t_up = time.monotonic()  # its listeners are up
    wait_until(lambda: works(inbound_connect(hp)), 1.0,
               "an inbound connection to work within 1 s of the enclave half's return")
    wait_until(lambda: works(outbound_connect(netns, op)), 1.0,
               "an outbound connection to work within 1 s of the enclave half's return")
    qp.wait_linked(host, timeout=1.0)
    print(f"service back {time.monotonic() - t_up:.3f} s after the enclave half's listeners")


def test_host_half_killed_and_restarted(qp, netns):
    cfg, hp, op = both_rules(qp)
    enclave = qp.enclave(cfg)
    host = qp.host(cfg)
    qp.wait_linked(host)
    # An outbound transfer: after the kill, only the enclave half can close its client.
    streams = [Stream(outbound_connect(netns, op)()) for _ in range(2)]
    try:
        for st in streams:
            st.wait_received(MiB)
        host.signal(signal.SIGKILL)
        t_kill = time.monotonic()
        assert_closed_promptly(streams, t_kill, "the host half was killed")
    finally:
        for st in streams:
            st.close()
    host.wait(5)
    wait_until(lambda: "control: link to the host half lost" in enclave.stderr(), 10,
               "the enclave half to notice the host half left")
    assert enclave.alive()
    # A new host half over the stale socket files, status socket and TIME_WAITs of the
    # old one; the enclave half finds it by itself (its backoff is capped at 5 s).
    host2 = qp.host(cfg, name="host2", env={"QPROXY_STATUS_SOCKET": str(qp.status_socket())})
    host2.wait_unix(qp.status_socket())
    qp.wait_linked(host2, timeout=15)
    assert echo_once(inbound_connect(hp), os.urandom(100_000))
    assert echo_once(outbound_connect(netns, op), os.urandom(100_000))
    assert enclave.alive() and host2.alive()


def setup_rule(qp, netns, direction, mode, *args):
    """One rule to a servers.py server; returns (server, connect, halves) with the control
    link up."""
    if direction == "inbound":
        hp = free_tcp_port()
        server = qp.server(mode, 6000, *args)
        cfg = qp.config(inbound=[(hp, 6000, 9000)])
        enclave = qp.enclave(cfg)
        host = qp.host(cfg)
        connect = inbound_connect(hp)
    else:
        port = free_tcp_port()
        server = qp.server(mode, port, *args, in_netns=False)
        cfg = qp.config(outbound=[("127.0.0.1", 9001, port)])
        host = qp.host(cfg)
        enclave = qp.enclave(cfg)
        connect = outbound_connect(netns, port)
    qp.wait_linked(host)
    return server, connect, (host, enclave)


def read_pattern(s, n, what):
    """Read exactly n bytes, every one the pattern's."""
    got = 0
    while got < n:
        d = s.recv(min(len(PATTERN), n - got))
        assert d, f"{what}: EOF after {got} of {n} bytes"
        assert d == pattern_at(got, len(d)), f"{what}: wrong bytes at offset {got}"
        got += len(d)


def read_pattern_until_end(s, limit, what):
    """Read PATTERN bytes until the connection ends: (how, bytes read), how 'eof' or 'reset'.
    Every byte must be the pattern's; more than limit bytes is an error."""
    got = 0
    while True:
        try:
            d = s.recv(len(PATTERN))
        except (ConnectionResetError, BrokenPipeError):
            return "reset", got
        except socket.timeout:
            raise AssertionError(f"{what}: no EOF nor reset 5 s after {got} bytes") from None
        if not d:
            return "eof", got
        assert d == pattern_at(got, len(d)), f"{what}: wrong bytes at offset {got}"
        got += len(d)
        assert got <= limit, f"{what}: {got} bytes, the server sent {limit}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_far_end_resets_mid_stream(qp, netns, direction, tmp_path):
    """The server resets after 4 MiB. Within the half next to it, the reset closes both
    sides at once; whether the client then sees a reset or an EOF is decided by the link
    between the halves, which carries no reset: neither vsock nor its Unix-socket
    emulation has one. A Unix stream socket closed with bytes still unread in it resets
    its peer, and one closed with none unread gives its peer a plain EOF (tests/unit/
    test_relay.c, `reset`). So:
    - the client sends nothing (even rounds): nothing is left unread in the link, and the
      client reads an EOF, after a prefix of the stream;
    - the client has filled the path with bytes the server never reads before the server
      resets (odd rounds): the half next to the server leaves them unread in the link,
      the other half's write to the link fails, and the client sees a reset."""
    nbytes = 4 * MiB
    trigger = tmp_path / "reset-now"
    server, connect, halves = setup_rule(qp, netns, direction, "resetmid", nbytes, trigger)
    baseline = {p.name: p.nfds() for p in halves}  # no connection yet: the idle count
    rounds = 8
    for i in range(rounds):
        what = f"round {i}"
        with connect() as s:
            s.settimeout(5)
            if i % 2 == 0:
                s.sendall(b"n")  # the server resets as soon as it has sent its bytes
                how, got = read_pattern_until_end(s, nbytes, what)
                assert how == "eof", f"{what}: the client saw a {how}, not an EOF"
            else:
                s.sendall(b"w")  # the server waits for the trigger
                read_pattern(s, nbytes, what)
                filled = send_until_stalled(s, hashlib.sha256(), limit=512 * MiB)
                trigger.touch()
                s.setblocking(True)
                s.settimeout(5)
                how, got = read_pattern_until_end(s, 0, what)
                assert how == "reset", (f"{what}: the client saw a {how}, not a reset, after "
                                        f"filling the path with {filled} bytes")
            t_end = time.monotonic()
            lines = wait_until(lambda: [l for l in server.stdout().splitlines()
                                        if l.startswith("reset ")][i:], 5,
                               f"the server's reset line {i}")
            t_reset = float(lines[0].split()[1])
            assert t_end - t_reset < 1.0, (f"{what}: the client saw the end ({how}) "
                                           f"{t_end - t_reset:.2f} s after the server's reset")
        wait_fds(halves, baseline, 2, f"after round {i}")
    assert all(p.alive() for p in halves)


def send_until_stalled(sock, hasher, limit, quiet=1.0, max_time=30):
    """Send PATTERN into sock until it has not been writable for `quiet` seconds.
    Returns bytes sent; fails if limit bytes or max_time go by without a stall."""
    sock.setblocking(False)
    total = 0
    deadline = time.monotonic() + max_time
    while total < limit and time.monotonic() < deadline:
        try:
            chunk = pattern_at(total, len(PATTERN))
            n = sock.send(chunk)
            hasher.update(chunk[:n])
            total += n
            continue
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [sock], [], quiet)
        if not w:
            return total
    raise AssertionError(f"the writes never blocked after {total} bytes: nothing pushes back")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_far_end_stalls_mid_stream(qp, netns, direction, tmp_path):
    trigger = tmp_path / "resume"
    server, connect, halves = setup_rule(qp, netns, direction, "stall", trigger, MiB)
    sent = hashlib.sha256()
    with connect() as s, Sampler(halves) as rss:
        written = send_until_stalled(s, sent, limit=256 * MiB)
        assert written >= MiB, f"stalled after {written} bytes, before the server's first MiB"
        # Stalled; the halves hold what they hold. Let them sit a moment full.
        held = {p.name: p.nfds() for p in halves}
        time.sleep(1)
        assert {p.name: p.nfds() for p in halves} == held
        trigger.touch()  # the server resumes
        s.setblocking(True)
        s.settimeout(30)
        tail = os.urandom(4 * MiB)
        s.sendall(tail)
        sent.update(tail)
        total = written + len(tail)
        s.shutdown(socket.SHUT_WR)
        answer = recv_all(s)
    print(f"stalled after {written / MiB:.1f} MiB; peak RSS KiB {rss.peak}")
    assert answer == b"received %d bytes sha256 %s\n" % (total, sent.hexdigest().encode())
    rss.assert_bounded(qp.binary)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("splice", [True, False], ids=["splice", "QPROXY_SPLICE=0"])
def test_in_flight_bytes_sit_in_a_kernel_pipe_or_a_buffer(qp, tmp_path, splice):
    """The server stops reading, the client keeps sending: each half holds what it has taken
    in and cannot pass on. Splicing, that is a kernel pipe of RELAY_PIPE (256 KiB) per
    direction, which it stops filling once full (seen through a copy of its fd, pidfd_getfd);
    with QPROXY_SPLICE=0 it is a buffer of RELAY_BUF (64 KiB) and no kernel pipe exists.
    The host half runs under strace: some splice calls in the first mode, none in the
    second. Splicing, a half whose last reads came small holds its bytes in a buffer
    instead (either half, or both). Then the server resumes, and every byte arrives."""
    trigger = tmp_path / "resume"
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    qp.server("stall", 6000, trigger, MiB)
    mode = {} if splice else {"QPROXY_SPLICE": "0"}
    enclave = qp.enclave(cfg, env=mode)
    trace = tmp_path / "host.strace"
    env = {"RUST_LOG": "info", "QPROXY_STATUS_SOCKET": str(qp.status_socket()), **mode}
    if sanitized(qp.binary):  # LeakSanitizer cannot run under ptrace; the other tests leak-check
        env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                     "detect_leaks=0"]))
    tracer = qp.procs.start("strace", [
        "strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=splice", "-o", str(trace),
        qp.binary, "host", f"--config={cfg}", "--vsock-dir", str(qp.vsock_dir), "4"], env=env)
    host = Tracee("host", tracer, qp.binary)
    qp.wait_host(tracer, cfg)
    qp.wait_linked(tracer)
    halves = (host, enclave)
    idle = {p.name: set(pipes_of(p.pid)) for p in halves}  # the resolver's own, say
    sent = hashlib.sha256()
    with inbound_connect(hp)() as s:
        written = send_until_stalled(s, sent, limit=256 * MiB)
        for p in halves:
            relay = {k: v for k, v in pipes_of(p.pid).items() if k not in idle[p.name]}
            if not splice:
                assert relay == {}, f"{p.name}: kernel pipes with QPROXY_SPLICE=0: {relay}"
                continue
            # The client's direction is stuck in both halves; the other has nothing in flight.
            assert len(relay) == 1, f"{p.name}: {len(relay)} kernel pipes in flight: {relay}"
            (fds,) = relay.values()
            assert len(fds) == 2, f"{p.name}: pipe ends {fds}"
            cap, queued = pipe_state(p.pid, fds[0])
            print(f"{p.name}: kernel pipe of {cap} bytes holds {queued}")
            assert cap == RELAY_PIPE
            # Empty when the last read into an empty pipe came small: the relay then holds
            # its bytes in a RELAY_BUF buffer, and the pipe waits in its free list.
            assert 0 <= queued <= RELAY_PIPE
        trigger.touch()  # the server resumes
        s.setblocking(True)
        s.settimeout(30)
        s.shutdown(socket.SHUT_WR)
        answer = recv_all(s)
    assert answer == b"received %d bytes sha256 %s\n" % (written, sent.hexdigest().encode())
    assert host.stop() == 0
    calls = [line for line in trace.read_text().splitlines() if "splice(" in line]
    print(f"stalled after {written / MiB:.1f} MiB; {len(calls)} splice calls in the host half")
    if splice:
        assert calls, "no splice call in the host half"
    else:
        assert calls == [], f"QPROXY_SPLICE=0, yet: {calls[:3]}"


def path_buffer_bound():
    """The most the kernel can hold on a path of four TCP sockets and a Unix pair, plus
    what qproxy's two halves hold in flight in this direction (a RELAY_PIPE kernel pipe
    each when splicing, as here; a RELAY_BUF buffer with QPROXY_SPLICE=0): what a
    throttled sender can have sent beyond what the client read. Real holdings are far
    below; this is the ceiling qproxy adds nothing to."""
    rmem = sysctl_int("net.ipv4.tcp_rmem")
    wmem = sysctl_int("net.ipv4.tcp_wmem")
    unix = max(sysctl_int("net.core.wmem_max"), sysctl_int("net.core.rmem_max"))
    return 2 * rmem + 2 * wmem + 2 * unix + 2 * RELAY_PIPE


def fionread(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_client_never_reads_while_server_sends_1_GiB(qp, netns, direction):
    nbytes = 1 << 30
    server, connect, halves = setup_rule(qp, netns, direction, "source", nbytes)

    def server_sent():
        lines = server.stdout().split()
        return int(lines[-1]) if lines and lines[-1].isdigit() else 0

    with connect() as s, Sampler(halves) as rss:
        # The server's count stops growing: it is throttled. 10 s at most.
        last = {"n": -1, "t": time.monotonic()}

        def settled():
            n = server_sent()
            if n != last["n"]:
                last["n"], last["t"] = n, time.monotonic()
            return n > 0 and time.monotonic() - last["t"] >= 2.0

        wait_until(settled, 10, "the server to be throttled (its count still grows: "
                   f"{server_sent()} bytes sent)")
        n_sent = server_sent()
        queued = fionread(s)
        bound = path_buffer_bound()
        print(f"server sent {n_sent / MiB:.1f} MiB, {queued / MiB:.1f} MiB wait in the client's "
              f"socket, in flight {(n_sent - queued) / MiB:.1f} MiB (kernel ceiling "
              f"{bound / MiB:.0f} MiB); peak RSS KiB {rss.peak}")
        assert n_sent < nbytes, "the whole GiB went out to a client that reads nothing"
        assert n_sent - queued <= bound
        rss.assert_bounded(qp.binary)
        # The client starts reading: the stream resumes where it stopped, intact.
        s.settimeout(10)
        got = 0
        while got < 64 * MiB:
            d = s.recv(len(PATTERN))
            assert d, f"EOF after {got} bytes"
            assert d == pattern_at(got, len(d)), f"wrong bytes at offset {got}"
            got += len(d)
    rss.assert_bounded(qp.binary)


def test_idle_client_holds_only_its_fds(qp):
    n = 50
    hp, _, host, enclave = qp.linked_echo()
    halves = (host, enclave)
    fds0 = {p.name: p.nfds() for p in halves}  # no connection yet: the idle count
    assert works(inbound_connect(hp))  # buffers, pools and log paths are warm
    wait_fds(halves, fds0, 5, "once the warm-up connection closed")
    rss0 = {p.name: rss_kib(p.pid) for p in halves}
    clients = []
    try:
        for _ in range(n):
            clients.append(inbound_connect(hp)())
        # Two sockets per connection in each half, and nothing else.
        wait_fds(halves, {k: v + 2 * n for k, v in fds0.items()}, 5,
                 f"with {n} idle connections relayed to the app")
        time.sleep(3)  # qproxy sets no idle timeout: after a while, all are still open
        for i, c in enumerate(clients):
            c.setblocking(False)
            try:
                d = c.recv(1)
                raise AssertionError(f"idle connection {i}: {'EOF' if not d else 'data'}")
            except BlockingIOError:
                pass
        for p in halves:
            grew = rss_kib(p.pid) - rss0[p.name]
            assert grew < 512, f"{p.name}: RSS grew {grew} KiB for {n} idle connections"
            assert p.nfds() == fds0[p.name] + 2 * n
        # Still usable after the idle spell.
        c = clients[0]
        c.setblocking(True)
        c.settimeout(5)
        c.sendall(b"after idling")
        assert recv_exactly(c, 12) == b"after idling"
    finally:
        for c in clients:
            c.close()
    wait_fds(halves, fds0, 2, "once every idle connection closed")
    # Closed as a clean end, not an error: n idle ones, one of which spoke.
    def clean_closes(p):
        return sum(1 for line in p.stderr().splitlines()
                   if "closed; 0 bytes up, 0 down" in line and "[enclave]" not in line)
    for p in halves:
        wait_until(lambda: clean_closes(p) >= n - 1, 5,
                   f"{p.name} to log a clean close for every idle connection")
    assert "closed on error" not in host.stderr() + enclave.stderr()


@pytest.mark.parametrize("half", ["host", "enclave"])
def test_sigterm_during_traffic_exits_0_promptly(qp, netns, half):
    cfg, hp, op = both_rules(qp)
    procs = {"enclave": qp.enclave(cfg), "host": qp.host(cfg)}
    qp.wait_linked(procs["host"])
    streams = [Stream(inbound_connect(hp)()) for _ in range(2)]
    streams += [Stream(outbound_connect(netns, op)()) for _ in range(2)]
    try:
        for st in streams:
            st.wait_received(MiB)
        p = procs[half]
        p.signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = p.wait(2)
        # 0, not a negative status: it exited, it was not killed (no core dump).
        assert rc == 0, f"{half} half: exit status {rc} on SIGTERM\n{p.stderr()}"
        print(f"{half} half exited 0 in {time.monotonic() - t0:.3f} s")
        # Its clients learn at once; none is left hanging.
        for i, st in enumerate(streams):  # both kinds of rule cross both halves
            end = st.join(3)
            assert end is not None and end[0] in ("eof", "reset"), f"stream {i}: {end}"
            assert st.corrupt is None, f"stream {i}: wrong byte at offset {st.corrupt}"
    finally:
        for st in streams:
            st.close()
    other = procs["enclave" if half == "host" else "host"]
    assert other.alive()
