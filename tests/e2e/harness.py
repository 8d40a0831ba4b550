"""Plumbing for the end-to-end tests: processes, network namespaces, readiness polls.

Nothing here knows about pytest; conftest.py turns it into fixtures.

Readiness is read from /proc/PID/net/{tcp,tcp6,unix}, which shows the sockets of
the network namespace PID lives in: a port or a Unix socket is ready when it is
in the LISTEN state there. That never opens a connection the test did not ask for.
"""

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
E2E = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
SERVERS = E2E / "servers.py"

# Environment variables qproxy reads; removed from every child's environment so
# that the caller's shell cannot change what a test runs.
QPROXY_ENV = ("QPROXY_VSOCK_DIR", "QPROXY_STATUS_SOCKET", "QPROXY_SPLICE", "QPROXY_CID", "QPROXY_LISTEN_CID", "QPROXY_PARENT_CID",
              "QPROXY_CONTROL_PORT", "RUST_LOG", "TOKIO_WORKER_THREADS")

_libc = ctypes.CDLL(None, use_errno=True)


def _relay_sizes():
    """RELAY_PIPE and RELAY_BUF as src/relay.h defines them, so that the tests follow it."""
    import re
    text = (REPO / "src" / "relay.h").read_text()
    sizes = {m.group(1): int(m.group(2)) * int(m.group(3)) for m in
             re.finditer(r"^#define (RELAY_PIPE|RELAY_BUF) \((\d+) \* (\d+)\)$", text, re.M)}
    return sizes["RELAY_PIPE"], sizes["RELAY_BUF"]


# What one direction of a connection may hold in flight: a kernel pipe of RELAY_PIPE bytes
# when splicing, a buffer of RELAY_BUF bytes with QPROXY_SPLICE=0.
RELAY_PIPE, RELAY_BUF = _relay_sizes()


def _prctl_or_raise(*args):
    if _libc.prctl(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "prctl: " + os.strerror(e))


# ---------------------------------------------------------------------------
# AF_VSOCK guard.
#
# This machine must never open an AF_VSOCK socket (vsock loopback leads out of the
# sandbox). Every test passes --vsock-dir or QPROXY_VSOCK_DIR, but a qproxy bug
# could ignore it, so every process the harness starts runs under a seccomp filter
# that makes socket(AF_VSOCK, ...) fail with EAFNOSUPPORT, as on a kernel without
# vsock. The filter is inherited across fork and exec.

AF_VSOCK = 40
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR_SOCKET = 41  # x86_64
_X32_SYSCALL_BIT = 0x40000000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_EAFNOSUPPORT = 97
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _bpf(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def _socket_family_filter(family):
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    prog = [
        _bpf(ld_abs, 0, 0, 4),                          # 0: A = arch
        _bpf(jeq, 1, 0, _AUDIT_ARCH_X86_64),            # 1: x86_64? -> 3
        _bpf(ret, 0, 0, _SECCOMP_RET_KILL_PROCESS),     # 2: other ABIs: kill
        _bpf(ld_abs, 0, 0, 0),                          # 3: A = syscall nr
        _bpf(jge, 4, 0, _X32_SYSCALL_BIT),              # 4: x32 ABI -> deny
        _bpf(jeq, 0, 2, _NR_SOCKET),                    # 5: socket()? -> 6, else allow
        _bpf(ld_abs, 0, 0, 16),                         # 6: A = low 32 bits of args[0]
        _bpf(jeq, 1, 0, family),                        # 7: the family? -> deny
        _bpf(ret, 0, 0, _SECCOMP_RET_ALLOW),            # 8
        _bpf(ret, 0, 0, _SECCOMP_RET_ERRNO | _EAFNOSUPPORT),  # 9
    ]
    return b"".join(prog)


class SocketFamilyGuard:
    """A preexec_fn that forbids socket(family, ...) in the child and its descendants."""

    def __init__(self, family=AF_VSOCK):
        code = _socket_family_filter(family)
        self._buf = ctypes.create_string_buffer(code, len(code))
        self._prog = _SockFprog(len(code) // 8, ctypes.addressof(self._buf))

    def apply(self):
        _prctl_or_raise(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _prctl_or_raise(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._prog), 0, 0)


VSOCK_GUARD = SocketFamilyGuard(AF_VSOCK)


# ---------------------------------------------------------------------------
# Waiting.

class WaitTimeout(AssertionError):
    pass


def wait_until(pred, timeout, what, watch=()):
    """Poll pred() every 10 ms until it is true; fail after timeout seconds, or as soon
    as one of the processes in watch has exited (its stderr goes into the message)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        for p in watch:
            if not p.alive():
                raise WaitTimeout(f"{p.name} exited with status {p.returncode} while waiting for "
                                  f"{what}\n--- {p.name} stderr:\n{p.stderr()}")
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def _proc_net_lines(pid, name):
    try:
        with open(f"/proc/{pid}/net/{name}") as f:
            return f.read().splitlines()[1:]
    except (FileNotFoundError, ProcessLookupError):
        return []


def tcp_listening(pid, port):
    """True when the network namespace of pid has a TCP socket listening on port."""
    for table in ("tcp", "tcp6"):
        for line in _proc_net_lines(pid, table):
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def unix_listening(pid, path):
    """True when the network namespace of pid has a Unix socket bound to path and listening."""
    path = str(path)
    for line in _proc_net_lines(pid, "unix"):
        f = line.split()
        if len(f) >= 8 and f[7] == path and int(f[3], 16) & 0x10000:
            return True
    return False


def netns_inode_of(pid):
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError):
        return None


# ---------------------------------------------------------------------------
# Processes.

class Proc:
    """A child process whose stdout and stderr go to files (never a pipe that could fill)."""

    def __init__(self, name, argv, log_dir, netns=None, env=None, nofile=None, cwd=REPO):
        """nofile: None to inherit RLIMIT_NOFILE, or (soft, hard) to set it in the child."""
        self.name = name
        self.netns = netns
        self.argv = list(argv)
        full = netns.exec_argv(self.argv) if netns else self.argv
        base = {k: v for k, v in os.environ.items() if k not in QPROXY_ENV}
        base.update(env or {})
        base = {k: v for k, v in base.items() if v is not None}  # None: leave unset
        self.out_path = Path(log_dir) / f"{name}.stdout"
        self.err_path = Path(log_dir) / f"{name}.stderr"
        self.returncode = None

        def preexec():
            if nofile is not None:
                # (soft, hard); root may raise the hard limit.
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
            # A shell may have started us with SIGINT ignored; children must see it.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            VSOCK_GUARD.apply()

        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          env=base, cwd=cwd, preexec_fn=preexec)
        self.pid = self.popen.pid

    def wait_netns(self, timeout=5):
        """`ip netns exec` enters the namespace and then execs the command in place, so
        self.pid is the command, in its namespace, once this returns."""
        if self.netns:
            wait_until(lambda: not self.alive() or netns_inode_of(self.pid) == self.netns.inode,
                       timeout, f"{self.name} to enter netns {self.netns.name}")

    def alive(self):
        if self.returncode is None:
            self.returncode = self.popen.poll()
        return self.returncode is None

    def wait(self, timeout):
        try:
            self.returncode = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"{self.name} (pid {self.pid}) still running after {timeout} s")
        return self.returncode

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout=3):
        """SIGTERM, then SIGKILL after timeout seconds. Returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.returncode = self.popen.wait(5)
        return self.returncode

    def nfds(self):
        """How many file descriptors the process holds now."""
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except (FileNotFoundError, ProcessLookupError):
            return 0

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            return self.out_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_tcp(self, port, timeout=10):
        wait_until(lambda: tcp_listening(self.pid, port), timeout,
                   f"{self.name} to listen on TCP port {port}", watch=[self])

    def wait_unix(self, path, timeout=10):
        wait_until(lambda: unix_listening(self.pid, path), timeout,
                   f"{self.name} to listen on Unix socket {path}", watch=[self])

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid} rc={self.returncode}>"


def run(argv, timeout=10, env=None, input=None):
    """Run a short command to completion under the AF_VSOCK guard."""
    base = {k: v for k, v in os.environ.items() if k not in QPROXY_ENV}
    base.update(env or {})
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                          env=base, cwd=REPO, preexec_fn=VSOCK_GUARD.apply)


_SYS_PIDFD_GETFD = 438  # x86_64


def pipes_of(pid):
    """{inode: [fd, ...]} of the pipes process pid holds open."""
    out = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("pipe:["):
            out.setdefault(link, []).append(int(fd))
    return out


def pipe_state(pid, fd):
    """(capacity, bytes queued) of the pipe at fd in process pid, through a copy of that
    fd (pidfd_getfd(2)): what the process itself would see."""
    import fcntl
    import termios
    pidfd = os.pidfd_open(pid)
    try:
        mine = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if mine < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"pidfd_getfd {pid} {fd}: {os.strerror(e)}")
    finally:
        os.close(pidfd)
    try:
        cap = fcntl.fcntl(mine, fcntl.F_GETPIPE_SZ)
        queued = struct.unpack("i", fcntl.ioctl(mine, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(mine)
    return cap, queued


class Tracee:
    """The command a tracer runs (qproxy under strace -o FILE, which ignores SIGTERM):
    stopped by its own pid, which ends the tracer too. Kept in a ProcSet after its
    tracer, so that teardown stops it first."""

    def __init__(self, name, tracer, binary, timeout=5):
        """binary: the command's executable; the tracer may start other processes of its
        own (strace forks a probe for --seccomp-bpf)."""
        self.name = name
        self.tracer = tracer
        self.argv = tracer.argv
        self.returncode = None
        exe = os.path.realpath(binary)

        def child():
            try:
                with open(f"/proc/{tracer.pid}/task/{tracer.pid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                return None
            for k in kids:
                try:
                    if os.readlink(f"/proc/{k}/exe") == exe:
                        return k
                except OSError:
                    pass
            return None

        self.pid = wait_until(child, timeout, f"{tracer.name} to start {binary}",
                              watch=[tracer])
        tracer.procs_set.all.append(self)

    def alive(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rpartition(")")[2].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    def stderr(self):
        return self.tracer.stderr()

    def nfds(self):
        return Proc.nfds(self)

    def stop(self, timeout=3):
        """SIGTERM, then SIGKILL; returns the tracer's exit status, which is the command's."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                wait_until(lambda: not self.alive(), timeout, f"{self.name} to exit")
            except WaitTimeout:
                continue
        self.returncode = self.tracer.wait(5)
        return self.returncode


def rss_kib(pid):
    """VmRSS of pid in KiB, 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def sanitized(binary):
    """A sanitizer build (make test-e2e-asan): slower, and its shadow memory and quarantine
    make absolute RSS figures meaningless."""
    return "asan" in os.path.basename(str(binary)) or "ASAN_OPTIONS" in os.environ


# ---------------------------------------------------------------------------
# Network namespaces.

_CLONE_NEWNET = 0x40000000
_netns_counter = 0


class Netns:
    """A network namespace standing in for the enclave, with loopback up unless lo_up is
    False (as in an enclave booted by a tiny init)."""

    def __init__(self, name, lo_up=True):
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
        try:
            if lo_up:
                subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                               check=True, timeout=10)
            self.inode = os.stat(f"/run/netns/{name}").st_ino
        except BaseException:
            self.delete()
            raise

    @classmethod
    def create(cls, prefix="qpe2e", lo_up=True):
        global _netns_counter
        _netns_counter += 1
        return cls(f"{prefix}-{os.getpid()}-{_netns_counter}", lo_up)

    def lo_is_up(self):
        r = subprocess.run(self.exec_argv(["ip", "-o", "link", "show", "lo"]), capture_output=True,
                           text=True, timeout=10, check=True)
        return ",UP" in r.stdout or "<UP" in r.stdout

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def delete(self):
        subprocess.run(["ip", "netns", "delete", self.name], timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(f"/etc/netns/{self.name}", ignore_errors=True)

    def set_hosts(self, text):
        """/etc/hosts as processes started in this namespace see it: `ip netns exec`
        bind-mounts /etc/netns/NAME/hosts over it. Removed with the namespace."""
        d = Path("/etc/netns") / self.name
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts").write_text(text)

    def ip(self, *args):
        """`ip -n NAME ARGS...`: configure this namespace, and only it."""
        subprocess.run(["ip", "-n", self.name, *args], check=True, timeout=10)

    def sockets(self, n, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """n sockets created inside this namespace. A network namespace belongs to a thread,
        so a short-lived thread enters the namespace, creates them, and exits; the sockets
        stay in the namespace and can be used from any thread."""
        result = {}

        def enter_and_create():
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, f"setns {self.name}: {os.strerror(e)}")
                finally:
                    os.close(fd)
                socks = []
                try:
                    for _ in range(n):
                        socks.append(socket.socket(family, type))
                except BaseException:
                    for s in socks:
                        s.close()
                    raise
                result["socks"] = socks
            except BaseException as e:  # handed to the caller's thread
                result["error"] = e

        t = threading.Thread(target=enter_and_create, name=f"setns-{self.name}")
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result["socks"]

    def connect(self, host, port, timeout=5):
        s = self.sockets(1)[0]
        try:
            s.settimeout(timeout)
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s

    def __repr__(self):
        return f"<Netns {self.name}>"


@contextlib.contextmanager
def veth_link(far_addr, hosts, blackholed=()):
    """(the host half's namespace, a far one), joined by a veth pair: 192.0.2.1/24 on the
    host's side, far_addr/24 on the far side, hosts as the host side's /etc/hosts. Each
    192.0.2.N for N in blackholed is a neighbour nobody is: a SYN to it crosses the link and
    is dropped, unanswered. Both namespaces are deleted at the end."""
    made = []
    try:
        host_ns = Netns.create()
        made.append(host_ns)
        far_ns = Netns.create()
        made.append(far_ns)
        host_ns.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
                   "netns", far_ns.name)
        host_ns.ip("addr", "add", "192.0.2.1/24", "dev", "veth0")
        host_ns.ip("link", "set", "veth0", "up")
        far_ns.ip("addr", "add", f"{far_addr}/24", "dev", "veth1")
        far_ns.ip("link", "set", "veth1", "up")
        for last in blackholed:
            host_ns.ip("neigh", "add", f"192.0.2.{last}", "lladdr", f"02:00:00:00:00:{last:02x}",
                       "dev", "veth0", "nud", "permanent")
        host_ns.set_hosts(hosts)
        yield host_ns, far_ns
    finally:
        for ns in reversed(made):
            ns.delete()


def cleanup_stale_netns(prefix="qpe2e"):
    """Delete namespaces left by earlier runs whose pytest process is gone."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == prefix and parts[1].isdigit():
            pid = int(parts[1])
            if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                subprocess.run(["ip", "netns", "delete", name], timeout=10,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)


def free_tcp_port():
    """A TCP port free on 0.0.0.0 in the root namespace right now."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def port_in_use(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


# ---------------------------------------------------------------------------
# Client-side helpers.

def recv_all(sock, limit=1 << 30):
    """Read until EOF; returns the bytes. Raises on timeout (the socket's)."""
    chunks = []
    n = 0
    while True:
        d = sock.recv(1 << 16)
        if not d:
            return b"".join(chunks)
        chunks.append(d)
        n += len(d)
        if n > limit:
            raise AssertionError(f"more than {limit} bytes received")


def echo(target, payload=b"ping"):
    """One echo exchange: payload out, our FIN, then everything back until EOF.
    target is a TCP port on 127.0.0.1 or a function returning a connected socket.
    Returns what came back; raises on a timeout (5 s)."""
    s = target() if callable(target) else socket.create_connection(("127.0.0.1", target),
                                                                    timeout=5)
    with s:
        s.settimeout(5)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        d = sock.recv(n - len(buf))
        if not d:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += d
    return bytes(buf)


def closed_within(sock, seconds):
    """Wait up to seconds for the peer to close sock (EOF or reset).
    Returns (how, elapsed): how is 'eof', 'reset' or None if still open; data received
    before the close is an error (the proxy must not invent bytes)."""
    t0 = time.monotonic()
    deadline = t0 + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, time.monotonic() - t0
        sock.settimeout(left)
        try:
            d = sock.recv(4096)
        except socket.timeout:
            return None, time.monotonic() - t0
        except (ConnectionResetError, BrokenPipeError):
            return "reset", time.monotonic() - t0
        if not d:
            return "eof", time.monotonic() - t0
        raise AssertionError(f"unexpected data from a dead end: {d[:100]!r}")


# ---------------------------------------------------------------------------
# qproxy itself.

class ProcSet:
    """Every process a test started; all stopped at teardown."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.all = []
        self._names = {}

    def start(self, name, argv, **kw):
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        unique = name if n == 0 else f"{name}-{n + 1}"
        p = Proc(unique, argv, self.log_dir, **kw)
        p.procs_set = self
        self.all.append(p)  # before any wait, so that teardown stops it whatever happens
        p.wait_netns()
        return p

    def stop_all(self):
        errors = []
        for p in reversed(self.all):
            try:
                p.stop()
            except Exception as e:  # stop the others all the same
                errors.append(e)
        if errors:
            raise errors[0]


class Config:
    """A qproxy TOML config written from rules; remembers them to know what to wait for."""

    def __init__(self, path, inbound=(), outbound=(), extra=""):
        self.path = Path(path)
        self.inbound = list(inbound)    # (host_port, enclave_port, vsock_port)
        self.outbound = list(outbound)  # (hostname, vsock_port, tcp_port)
        parts = []
        for hp, ep, vp in self.inbound:
            parts.append(f"[[inbound_connections]]\nhost_port = {hp}\n"
                         f"enclave_port = {ep}\nvsock_port = {vp}\n")
        for host, vp, tp in self.outbound:
            parts.append(f"[[outbound_connections]]\nhostname = \"{host}\"\n"
                         f"vsock_port = {vp}\ntcp_port = {tp}\n")
        if extra:
            parts.append(extra)
        self.text = "\n".join(parts)
        self.path.write_text(self.text)

    def __str__(self):
        return str(self.path)


PARENT_CID = 3


class QProxy:
    """Starts the two halves of one qproxy binary, the way a user would, with the vsock
    emulation in vsock_dir: the host half in the root namespace, the enclave half in netns."""

    def __init__(self, binary, procs, netns, vsock_dir, work_dir):
        self.binary = str(binary)
        self.procs = procs
        self.netns = netns
        self.vsock_dir = Path(vsock_dir)
        self.work_dir = Path(work_dir)
        self._nconfig = 0

    def config(self, inbound=(), outbound=(), extra="", name=None):
        self._nconfig += 1
        return Config(self.work_dir / (name or f"qproxy{self._nconfig}.toml"),
                      inbound, outbound, extra)

    def vsock_path(self, cid, port):
        return self.vsock_dir / f"{cid}.{port}"

    def status_socket(self, name="host"):
        return self.work_dir / f"{name}.status.sock"

    def host(self, config, cid=4, args=None, env=None, wait=True, nofile=None, name="host",
             netns=None):
        """qproxy host --config=FILE --vsock-dir DIR CID, in the root namespace (or netns),
        with its status socket in the test's directory."""
        if args is None:
            args = ["host", f"--config={config}", "--vsock-dir", str(self.vsock_dir), str(cid)]
        env = {"RUST_LOG": "info", "QPROXY_STATUS_SOCKET": str(self.status_socket(name)),
               **(env or {})}
        p = self.procs.start(name, [self.binary, *args], env=env, nofile=nofile, netns=netns)
        if wait:
            self.wait_host(p, config)
        return p

    def enclave(self, config, cid=4, args=None, env=None, wait=True, nofile=None, name="enclave"):
        """qproxy enclave --config=FILE --vsock-dir DIR --cid CID, inside the netns."""
        if args is None:
            args = ["enclave", f"--config={config}", "--vsock-dir", str(self.vsock_dir),
                    "--cid", str(cid)]
        p = self.procs.start(name, [self.binary, *args], netns=self.netns,
                             env={"RUST_LOG": "info", **(env or {})}, nofile=nofile)
        if wait:
            self.wait_enclave(p, config, cid)
        return p

    def linked_echo(self):
        """Both halves, linked, with one inbound rule to an echo server in the enclave.
        Returns (host_port, config, host, enclave)."""
        hp = free_tcp_port()
        cfg = self.config(inbound=[(hp, 6000, 9000)])
        self.server("echo", 6000)
        enclave = self.enclave(cfg)
        host = self.host(cfg)
        self.wait_linked(host)
        return hp, cfg, host, enclave

    def wait_linked(self, host, timeout=10):
        """Until the control channel is up: the host half logs it at info."""
        wait_until(lambda: host.stderr().count("control: link to the enclave half up") >
                   host.stderr().count("control: the enclave half is gone"), timeout,
                   "the control link between the halves", watch=[host])

    def wait_host(self, p, config, timeout=10):
        for hp, _, _ in config.inbound:
            p.wait_tcp(hp, timeout)
        for _, vp, _ in config.outbound:
            p.wait_unix(self.vsock_path(PARENT_CID, vp), timeout)

    def wait_enclave(self, p, config, cid=4, timeout=10):
        for _, _, vp in config.inbound:
            p.wait_unix(self.vsock_path(cid, vp), timeout)
        for _, _, tp in config.outbound:
            p.wait_tcp(tp, timeout)

    def server(self, mode, port, *args, in_netns=True, host="127.0.0.1", nofile=None):
        """One of servers.py's servers, in the enclave netns unless in_netns is False."""
        argv = [PYTHON, str(SERVERS), mode, host, str(port), *map(str, args)]
        p = self.procs.start(f"{mode}-server", argv, netns=self.netns if in_netns else None,
                             nofile=nofile)
        p.wait_tcp(port)
        return p
