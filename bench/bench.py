#!/usr/bin/python3
"""Side-by-side benchmark: qproxy against socat and against no proxy at all.

Run it through bench/run.sh (what `make bench` runs); bench/README.md says what each
figure means. Everything is measured in one topology:

  client (root netns) -> front proxy (root netns) -> Unix socket standing in for vsock
    -> back proxy (enclave netns, loopback only) -> server on 127.0.0.1 (enclave netns)

and "direct" runs the same client inside the enclave namespace against the same server.
Every measurement goes path after path, round after round, so that a slow spell of the
machine is spread over all paths instead of landing on one.

The same file holds the two helpers of the scale test, run as subprocesses:
  bench.py hold PORT SECONDS       accept and keep connections, greet each with one byte
  bench.py open PORT N SECONDS     open N connections, wait for each one's byte, keep them
"""

import ctypes
import datetime
import errno
import hashlib
import json
import math
import os
import platform
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Two fds per connection per half: 10,000 connections need 20,000 and a few. Root may
# lack CAP_SYS_RESOURCE (it does in this sandbox), so the hard limit is what there is.
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
SCALE_FD_SPARE = 64  # listeners, logs, the loop's own: what a half needs besides connections

# Servers, inside the enclave namespace, on 127.0.0.1.
SERVER = {"iperf": 15201, "redis": 15202, "http": 15203, "hold": 15204, "pg": 15205}
# Front ports in the root namespace, per proxied path. qproxy's vsock port = its host port.
FRONT = {
    "qproxy": {"iperf": 15101, "redis": 15102, "http": 15103, "hold": 15104, "pg": 15105},
    "socat": {"iperf": 15111, "redis": 15112, "http": 15113, "pg": 15115},
    "socatb": {"iperf": 15121, "redis": 15122, "http": 15123, "pg": 15125},
}
SOCAT_SVCS = ("iperf", "redis", "http", "pg")
STARTUP_PORT = 15150  # qproxy host half / socat, in the startup measurement (root netns)

# Egress (ONLY=egress): the other way, a client in the enclave namespace reaching a server
# in the root namespace, through an outbound rule and through the [egress] proxy, with a
# qproxy pair of their own (control port EGRESS["control"]).
EGRESS = {"srv": 15206, "rule_vsock": 15207, "egress_vsock": 15208, "proxy": 15209,
          "control": 15210}
EGRESS_PATHS = ["rule", "egress"]
# The DNS mode's names for dnsperf (ONLY=dns): allowed on port 443, each given its address
# and listener by its first query, then answered from what the half holds.
DNS_NAMES = 100
EGRESS_LABEL = {"rule": "outbound rule", "egress": "egress proxy"}

PATHS = ["direct", "qproxy", "socat", "socatb"]
LABEL = {"direct": "direct", "qproxy": "qproxy", "socat": "socat",
         "socatb": "socat -b 262144"}

# socat forks a process per connection and per side; on this VM a fork costs ~1 ms, so
# it manages ~100 new connections/s. Every path gets the same redis requests (socat's
# 100,000 take ~15 s per command at its ~7,000 req/s); ab's -t time limit bounds socat's
# new connections, and direct and qproxy never reach it.
# pgbench: quick mode keeps select-only alone, the small-request figure a regression in
# the relay shows in first.
FULL = dict(rounds=3, eg_mib=1024, dns_secs=10, iperf_secs=5, redis_n=100000, ab_n=20000, ab_secs=15, scale_n=10000,
            scale_probe_n=10000, startup_reps=20, retry_secs=120, pg_secs=5,
            pg_modes=("ro", "rw"))
QUICK = dict(rounds=1, eg_mib=128, dns_secs=2, iperf_secs=1, redis_n=5000, ab_n=2000, ab_secs=4, scale_n=1000,
             scale_probe_n=2000, startup_reps=5, retry_secs=0, pg_secs=3, pg_modes=("ro",))
# The throwaway PostgreSQL cluster: scale 10 is 1,000,000 accounts (~160 MB), in memory.
PG_SCALE = 10
PG_CLIENTS = 16
PG_USER = "postgres"  # the server refuses to run as root; Debian's package makes this user
PG_MODES = {"ro": ("select-only", ["-S"]), "rw": ("tpcb-like", [])}
# A sample during which other processes took more than this share of the machine is
# marked in the report, and measured again while the run's retry budget lasts.
OTHERS_MAX = 0.10


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class SetupError(Exception):
    """The benchmark cannot run (a server did not start, a path carries no data)."""


# ---------------------------------------------------------------------------
# AF_VSOCK guard: this machine must never open an AF_VSOCK socket. The bench puts
# itself under a seccomp filter that makes socket(AF_VSOCK, ...) fail with
# EAFNOSUPPORT, and every process it starts inherits it, so a qproxy bug that ignored
# --vsock-dir would fail instead of leaving the sandbox. Applied once to the bench
# rather than in a preexec_fn: that would make every spawn a full fork of Python,
# 20 ms here, which the startup figure would then carry. The filter is a handful of
# BPF instructions on socket() only, the same for every path, direct included;
# SECCOMP_FILTER_FLAG_SPEC_ALLOW keeps the kernel from switching on speculation
# mitigations for filtered processes.

_libc = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _bpf(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def _vsock_filter():
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    return b"".join([
        _bpf(ld, 0, 0, 4),                   # A = arch
        _bpf(jeq, 1, 0, 0xC000003E),         # x86_64? -> 3
        _bpf(ret, 0, 0, 0x80000000),         # another ABI: kill
        _bpf(ld, 0, 0, 0),                   # A = syscall number
        _bpf(jge, 4, 0, 0x40000000),         # x32 -> deny
        _bpf(jeq, 0, 2, 41),                 # socket()? else allow
        _bpf(ld, 0, 0, 16),                  # A = args[0] (low half)
        _bpf(jeq, 1, 0, 40),                 # AF_VSOCK? -> deny
        _bpf(ret, 0, 0, 0x7FFF0000),         # allow
        _bpf(ret, 0, 0, 0x00050000 | 97),    # errno EAFNOSUPPORT
    ])


_FILTER = _vsock_filter()
_FILTER_BUF = ctypes.create_string_buffer(_FILTER, len(_FILTER))
_FPROG = _SockFprog(len(_FILTER) // 8, ctypes.addressof(_FILTER_BUF))


def guard_self():
    """No AF_VSOCK for this process and all it starts; every fd the hard limit allows."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    if _libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    # seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog)
    if _libc.syscall(317, 1, 4, ctypes.byref(_FPROG)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER)")
    # Checked without ever trying socket(AF_VSOCK): that would open one if it failed.
    with open("/proc/self/status") as f:
        if "\nSeccomp:\t2\n" not in f.read():
            raise SystemExit("bench: error: the AF_VSOCK guard (seccomp filter) is not in place")


def _raise_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


# ---------------------------------------------------------------------------
# Processes. Each one starts in a session (and process group) of its own, so that
# stopping it also stops what it forked (socat's children, nginx's worker). The group
# ids go to WORK/pgids too, for run.sh's last-resort cleanup.

class Procs:
    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, name, argv, ns=None, stdin=subprocess.DEVNULL, stdout=None, env=None):
        if ns:
            argv = ["ip", "netns", "exec", ns] + argv
        logf = open(self.work / f"{name}.log", "ab")
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout if stdout is not None else logf,
                             stderr=logf, start_new_session=True, env=env)
        logf.close()
        p.bench_name = name
        self.procs.append(p)
        with open(self.work / "pgids", "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop(self, p, grace=3.0):
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; its forked children (socat) may not be yet.
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p, grace=2.0)


def run(argv, timeout, ns=None):
    """Run a client to completion, bounded in time. Returns (rc, stdout, stderr)."""
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        return None, out, f"timed out after {timeout} s"
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------
# /proc readers.

def _net_lines(pid, table):
    path = f"/proc/{pid}/net/{table}" if pid else f"/proc/net/{table}"
    try:
        with open(path) as f:
            return f.read().splitlines()[1:]
    except (FileNotFoundError, ProcessLookupError):
        return []


def tcp_listening(port, pid=None):
    """A TCP socket listens on port in the network namespace of pid (root ns if None)."""
    for table in ("tcp", "tcp6"):
        for line in _net_lines(pid, table):
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def unix_listening(path, pid=None):
    for line in _net_lines(pid, "unix"):
        f = line.split()
        # Flags 00010000 is __SO_ACCEPTCON: a listening socket.
        if len(f) >= 8 and f[7] == str(path) and f[3] == "00010000":
            return True
    return False


def connects(family, addr):
    """One connect attempt: is something listening there? (Closed at once.)"""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        return s.connect_ex(addr) == 0


def wait_until(pred, timeout, what, watch=()):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        for p in watch:
            if p.poll() is not None:
                raise SetupError(f"{p.bench_name} exited with status {p.returncode} "
                                 f"while waiting for {what}")
        if time.monotonic() >= deadline:
            raise SetupError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def cpu_seconds(pid, children=False):
    """utime+stime of the process (all its threads); with children=True also the
    cutime+cstime of the children it has reaped."""
    f = stat_fields(pid)
    t = int(f[11]) + int(f[12])
    if children:
        t += int(f[13]) + int(f[14])
    return t / CLK_TCK


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def sh(*argv):
    """A short command's stdout, for the report's header."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              cwd=REPO).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine_busy():
    """CPU seconds all processes spent in user and system mode, and the seconds available."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2]  # user, nice, system
    return busy / CLK_TCK, sum(v[:8]) / CLK_TCK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def pg_bin():
    """The newest PostgreSQL's bin directory (Debian: /usr/lib/postgresql/VERSION/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else None


def percentile(sorted_values, q):
    """Nearest rank: the smallest value with at least q of all at or below it."""
    n = len(sorted_values)
    return sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))]


# ---------------------------------------------------------------------------
# The bench.

class Bench:
    def __init__(self, args):
        self.quick = args.quick
        self.p = QUICK if args.quick else FULL
        self.work = Path(args.workdir)
        self.ns = args.netns
        self.out = Path(args.out)
        self.procs = Procs(self.work)
        self.ns_created = False
        self.vdir = self.work / "v"  # short: a Unix socket path must fit in 108 bytes
        self.bin = self.work / "qproxy-static"
        self.bin_src = Path(args.binary).resolve()
        self.binary_note = args.binary_note
        self.commit = args.commit
        self.only = set(args.only.split(",")) if args.only else set()
        self.wait_quiet_limit = args.wait_quiet
        # results[metric][path] = list of per-round values (None = failed)
        self.results = {}
        self.others = {}  # the same shape: other processes' share of the machine per sample
        self.sample_others = []  # the same, once per sample
        self.pending = None
        self.retry_left = self.p["retry_secs"]
        self.retried = 0
        self.errors = []
        self.notes = []
        self.scale = {}
        self.startup = {}
        self.cpu_pids = {}  # path -> service -> (proxy pids, count their reaped children)
        self.pg = None
        self.pg_bin = pg_bin()
        self.eg_ready = False
        self.t_start = time.monotonic()

    def wants(self, part):
        return not self.only or part in self.only

    # -- results

    def record(self, metric, path, value):
        if self.pending is not None:  # inside sample(): kept only if the sample is kept
            self.pending.append((metric, path, value))
            return
        self.results.setdefault(metric, {}).setdefault(path, []).append(value)

    def others_cpu(self):
        """CPU seconds of every process outside the bench: all user processes not in a
        process group the bench started nor in its own, each with what it has reaped
        (a compiler that came and went during a sample shows in its make's cstime).
        Kernel threads are left out: softirq work for the bench's own traffic runs there."""
        groups = {str(p.pid) for p in self.procs.procs} | {str(os.getpgrp())}
        t = 0
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                f = stat_fields(d)
            except OSError:
                continue
            if f[2] in groups or int(f[6]) & 0x00200000:  # PF_KTHREAD
                continue
            t += sum(int(x) for x in f[11:15])
        return t / CLK_TCK

    def sample(self, what, path, fn, *args):
        """One measurement, with the share of the machine that other processes took
        meanwhile. Above OTHERS_MAX it is measured again, while the retry budget lasts:
        this machine is shared, and a build next door halves a figure. Once per sample."""
        retries = 1
        while True:
            self.pending = []
            (_, a0), o0 = machine_busy(), self.others_cpu()
            try:
                self.guarded(what, path, fn, *args)
            finally:
                pending, self.pending = self.pending, None
            (_, a1), o1 = machine_busy(), self.others_cpu()
            others = max(0.0, (o1 - o0) / max(a1 - a0, 0.01))
            if others > OTHERS_MAX and self.retry_left > 0 and retries > 0:
                retries -= 1
                self.retry_left -= (a1 - a0) / (os.cpu_count() or 1)  # wall seconds
                self.retried += 1
                log(f"  (other processes took {100 * others:.0f}% of the machine: measuring "
                    f"again, {max(self.retry_left, 0):.0f} s of retries left)")
                time.sleep(1)
                continue
            for metric, p, value in pending:
                self.results.setdefault(metric, {}).setdefault(p, []).append(value)
                self.others.setdefault(metric, {}).setdefault(p, []).append(others)
            self.sample_others.append(others)
            return

    def error(self, what, path, text):
        line = f"{what} via {LABEL.get(path, path)}: {text.strip()[:300]}"
        self.errors.append(line)
        log("ERROR " + line)

    # -- setup

    def setup(self):
        shutil.copy2(self.bin_src, self.bin)  # a parallel rebuild must not swap it mid-run
        self.git0 = self.git_state()
        self.vdir.mkdir()
        os.chmod(self.work, 0o755)  # nginx's worker runs as nobody and reads www/
        for port in [STARTUP_PORT, EGRESS["srv"]] + [p for d in FRONT.values() for p in d.values()]:
            if tcp_listening(port):
                raise SetupError(f"port {port} is already in use in the root namespace")
        subprocess.run(["ip", "netns", "add", self.ns], check=True, timeout=10)
        self.ns_created = True
        subprocess.run(["ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up"],
                       check=True, timeout=10)

    def start_servers(self):
        ns = self.ns
        self.iperf_srv = self.start_iperf_server()
        self.redis = self.procs.start(
            "redis", ["redis-server", "--save", "", "--appendonly", "no", "--port",
                      str(SERVER["redis"]), "--bind", "127.0.0.1", "--maxclients", "4096"],
            ns=ns)
        www = self.work / "www"
        www.mkdir()
        (www / "small.html").write_bytes(b"<html><body>" + b"qproxy bench " * 8 +
                                         b"</body></html>\n")
        os.chmod(www, 0o755)
        os.chmod(www / "small.html", 0o644)
        self.nginx = self.start_nginx("nginx", self.work, SERVER["http"], www, ns=ns)
        for name, p in (("redis", self.redis), ("http", self.nginx)):
            wait_until(lambda: tcp_listening(SERVER[name], p.pid), 10,
                       f"{name} server in {ns}", [p])
        if self.wants("pgbench"):
            self.start_postgres()

    def start_nginx(self, name, w, port, www, ns=None, extra=""):
        """nginx, 1 worker, access log off, serving www on 127.0.0.1:port; its pid, logs
        and temp dirs in w."""
        (w / "nginx-tmp").mkdir()
        conf = w / "nginx.conf"
        conf.write_text(f"""worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;{extra}
    client_body_temp_path {w}/nginx-tmp/body;
    proxy_temp_path {w}/nginx-tmp/proxy;
    fastcgi_temp_path {w}/nginx-tmp/fastcgi;
    uwsgi_temp_path {w}/nginx-tmp/uwsgi;
    scgi_temp_path {w}/nginx-tmp/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {www};
    }}
}}
""")
        return self.procs.start(name, ["nginx", "-e", str(w / "nginx-error.log"), "-c",
                                       str(conf), "-p", str(w), "-g", "daemon off;"], ns=ns)

    def start_postgres(self):
        """A throwaway cluster in WORK/pg, in the enclave namespace: no durability (fsync,
        synchronous_commit, full_page_writes off), TCP on 127.0.0.1 only, its Unix socket in
        WORK/pg rather than the system's; then pgbench's tables at scale PG_SCALE."""
        if self.pg_bin is None:
            raise SetupError("no pgbench under /usr/lib/postgresql/*/bin "
                             "(apt-get install postgresql)")
        try:
            pw = pwd.getpwnam(PG_USER)
        except KeyError:
            raise SetupError(f"no user {PG_USER} to run the PostgreSQL server as "
                             "(apt-get install postgresql makes it)") from None
        d = self.work / "pg"
        d.mkdir()
        os.chown(d, pw.pw_uid, pw.pw_gid)
        data = d / "data"
        as_pg = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
        rc, out, err = run(as_pg + [str(self.pg_bin / "initdb"), "-D", str(data), "-U", PG_USER,
                                    "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"], 120)
        if rc != 0:
            raise SetupError(f"initdb failed: {(err or out).strip()[-1000:]}")
        self.pg = self.procs.start("postgres", as_pg + [
            str(self.pg_bin / "postgres"), "-D", str(data), "-p", str(SERVER["pg"]),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={d}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "shared_buffers=256MB"], ns=self.ns)

        def ready():
            # What pg_ctl -w reads: the status line postmaster.pid ends with.
            try:
                return (data / "postmaster.pid").read_text().split("\n")[7].strip() == "ready"
            except (OSError, IndexError):
                return False
        wait_until(ready, 30, f"postgres in {self.ns}", [self.pg])
        t0 = time.monotonic()
        rc, out, err = run(self.client("direct", [
            str(self.pg_bin / "pgbench"), "-i", "-q", "-s", str(PG_SCALE), "-h", "127.0.0.1",
            "-p", str(SERVER["pg"]), "-U", PG_USER, "postgres"]), 300)
        if rc != 0:
            raise SetupError(f"pgbench -i failed: {(err or out).strip()[-1000:]}")
        log(f"postgres: throwaway cluster, pgbench -i -s {PG_SCALE} in "
            f"{time.monotonic() - t0:.1f} s")

    def stop_postgres(self):
        # Immediate shutdown: the cluster is thrown away, no checkpoint is worth waiting for.
        if self.pg is None or self.pg.poll() is not None:
            return
        try:
            os.kill(self.pg.pid, signal.SIGQUIT)
            self.pg.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass

    def start_iperf_server(self):
        p = self.procs.start("iperf3-server", ["iperf3", "-s", "-B", "127.0.0.1", "-p",
                                               str(SERVER["iperf"])], ns=self.ns)
        wait_until(lambda: tcp_listening(SERVER["iperf"], p.pid), 10,
                   f"iperf3 server in {self.ns}", [p])
        return p

    def restart_iperf_server(self):
        self.procs.stop(self.iperf_srv)
        self.iperf_srv = self.start_iperf_server()

    def start_qproxy(self):
        conf = self.work / "qproxy.toml"
        rules = []
        for svc, host_port in FRONT["qproxy"].items():
            rules.append(f"[[inbound_connections]]\nhost_port = {host_port}\n"
                         f"enclave_port = {SERVER[svc]}\nvsock_port = {host_port}\n")
        conf.write_text("\n".join(rules))
        env = self.qproxy_env()
        # Host half first: an enclave half that finds no host half warns and retries.
        self.q_host = self.procs.start(
            "qproxy-host", [str(self.bin), "host", "--config", str(conf), "--vsock-dir",
                            str(self.vdir), "4"], env=env)
        for port in FRONT["qproxy"].values():
            wait_until(lambda: tcp_listening(port), 10, f"qproxy host half on :{port}",
                       [self.q_host])
        self.q_enclave = self.procs.start(
            "qproxy-enclave", [str(self.bin), "enclave", "--config", str(conf), "--vsock-dir",
                               str(self.vdir), "--cid", "4"], ns=self.ns, env=env)
        for port in FRONT["qproxy"].values():
            sock = self.vdir / f"4.{port}"
            wait_until(lambda: unix_listening(sock, self.q_enclave.pid), 10,
                       f"qproxy enclave half on {sock}", [self.q_enclave])
        halves = ([self.q_host.pid, self.q_enclave.pid], False)
        self.cpu_pids["qproxy"] = {svc: halves for svc in FRONT["qproxy"]}

    def qproxy_env(self):
        """The caller's environment without qproxy's variables, and a private status
        socket for versions that have one (its default is one path for the machine)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("QPROXY_") and k not in ("RUST_LOG", "TOKIO_WORKER_THREADS")}
        env["QPROXY_STATUS_SOCKET"] = str(self.work / "status.sock")
        return env

    def start_socat(self):
        for path, extra in (("socat", []), ("socatb", ["-b", "262144"])):
            parents = {}
            for svc in SOCAT_SVCS:
                sock = self.vdir / f"{path}-{svc}"
                back = self.procs.start(
                    f"{path}-{svc}-enclave",
                    ["socat"] + extra + [f"UNIX-LISTEN:{sock},fork,backlog=1024",
                                         f"TCP:127.0.0.1:{SERVER[svc]}"],
                    ns=self.ns)
                wait_until(lambda: unix_listening(sock, back.pid), 10, f"socat on {sock}", [back])
                port = FRONT[path][svc]
                front = self.procs.start(
                    f"{path}-{svc}-host",
                    ["socat"] + extra + [
                        f"TCP-LISTEN:{port},fork,reuseaddr,backlog=1024,bind=127.0.0.1",
                        f"UNIX-CONNECT:{sock}"])
                wait_until(lambda: tcp_listening(port), 10, f"socat on :{port}", [front])
                parents[svc] = [front.pid, back.pid]
            self.cpu_pids[path] = {svc: (pids, True) for svc, pids in parents.items()}

    def smoke(self):
        """Every path carries a request end to end before anything is timed."""
        for path in PATHS:
            rc, out, err = run(self.client(path, ["redis-cli", "-h", "127.0.0.1", "-p",
                                                  str(self.port(path, "redis")), "PING"]), 10)
            if rc != 0 or "PONG" not in out:
                raise SetupError(f"redis PING via {LABEL[path]} failed: {out} {err}")
            rc, out, err = run(self.client(path, [
                "ab", "-q", "-n", "10", "-c", "2", "-s", "5",
                f"http://127.0.0.1:{self.port(path, 'http')}/small.html"]), 20)
            if rc != 0 or not re.search(r"Complete requests:\s+10\b", out) \
                    or not re.search(r"Failed requests:\s+0\b", out):
                raise SetupError(f"HTTP via {LABEL[path]} failed: {out} {err}")
            if self.pg is None:
                continue
            rc, out, err = run(self.client(path, [
                str(self.pg_bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port(path, "pg")),
                "-U", PG_USER, "-Atc", "select count(*) from pgbench_branches", "postgres"]), 20)
            if rc != 0 or out.strip() != str(PG_SCALE):
                raise SetupError(f"postgres query via {LABEL[path]} failed: {out} {err}")
        log("smoke: every path answers (redis PING, 10 HTTP GETs"
            + (", a postgres query)" if self.pg else ")"))

    # -- helpers

    def port(self, path, svc):
        return SERVER[svc] if path == "direct" else FRONT[path][svc]

    def client(self, path, argv):
        """direct: the client runs inside the enclave namespace, next to the server."""
        return ["ip", "netns", "exec", self.ns] + argv if path == "direct" else argv

    def order(self, r):
        k = r % len(PATHS)
        return PATHS[k:] + PATHS[:k]

    def wait_children_reaped(self, pids, timeout=10.0):
        deadline = time.monotonic() + timeout
        while any(children_of(p) for p in pids):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def proxy_cpu(self, path, svc):
        """CPU seconds so far of the proxy processes that carry svc's connections."""
        pids, with_children = self.cpu_pids[path][svc]
        if with_children and not self.wait_children_reaped(pids):
            self.notes.append(f"{LABEL[path]}: children still running 10 s after a {svc} "
                              "test; its CPU figure misses them")
        return sum(cpu_seconds(p, with_children) for p in pids)

    # -- measurements

    def m_iperf(self, path, streams):
        key = f"iperf{streams}"
        secs = self.p["iperf_secs"]
        cpu0 = self.proxy_cpu(path, "iperf") if path != "direct" else None
        argv = ["iperf3", "-c", "127.0.0.1", "-p", str(self.port(path, "iperf")), "-t",
                str(secs), "-J", "--connect-timeout", "5000"]
        if streams > 1:
            argv += ["-P", str(streams)]
        rc, out, err = run(self.client(path, argv), secs + 30)
        cpu1 = self.proxy_cpu(path, "iperf") if path != "direct" else None
        try:
            j = json.loads(out)
        except ValueError:
            j = {"error": (err or out)[:300] or f"exit status {rc}"}
        if rc != 0 or "error" in j:
            self.error(f"iperf3 -P {streams}", path, str(j.get("error", err)))
            self.record(f"{key}_gbps", path, None)
            self.record(f"{key}_cpu", path, None)
            self.restart_iperf_server()
            return
        s = j["end"]["sum_received"]
        gbps = s["bits_per_second"] / 1e9
        self.record(f"{key}_gbps", path, gbps)
        if cpu0 is not None:
            gb = s["bytes"] / 1e9
            self.record(f"{key}_cpu", path, (cpu1 - cpu0) / gb if gb > 0 else None)
        log(f"  iperf3 -P {streams:<2} {LABEL[path]:16} {gbps:7.2f} Gbit/s" +
            (f"  proxies {(cpu1 - cpu0) / (s['bytes'] / 1e9):.3f} CPU s/GB"
             if cpu0 is not None else ""))

    def m_redis(self, path):
        n = self.p["redis_n"]
        cpu0 = self.proxy_cpu(path, "redis") if path != "direct" else None
        rc, out, err = run(self.client(path, [
            "redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port(path, "redis")),
            "-t", "get,set", "-n", str(n), "-c", "50", "--csv", "--precision", "3"]), 180)
        cpu1 = self.proxy_cpu(path, "redis") if path != "direct" else None
        rows = {}
        for line in out.splitlines():
            f = [x.strip('"') for x in line.split(",")]
            if len(f) == 8 and f[0] in ("GET", "SET"):
                rows[f[0]] = f
        if cpu0 is not None:  # n GETs and n SETs
            ok = rc == 0 and len(rows) == 2
            self.record("redis_cpu", path, (cpu1 - cpu0) / (2 * n) * 1e5 if ok else None)
        for cmd in ("GET", "SET"):
            k = cmd.lower()
            if rc != 0 or cmd not in rows:
                self.error(f"redis-benchmark {cmd}", path, err or out or f"exit status {rc}")
                for m in ("rps", "p50", "p99"):
                    self.record(f"redis_{k}_{m}", path, None)
                continue
            f = rows[cmd]
            self.record(f"redis_{k}_rps", path, float(f[1]))
            self.record(f"redis_{k}_p50", path, float(f[4]))
            self.record(f"redis_{k}_p99", path, float(f[6]))
            log(f"  redis {cmd} {LABEL[path]:16} {float(f[1]):9.0f} req/s  "
                f"p50 {f[4]} ms  p99 {f[6]} ms")

    def m_ab(self, path):
        n = self.p["ab_n"]
        rc, out, err = run(self.client(path, [
            "ab", "-q", "-r", "-s", "10", "-t", str(self.p["ab_secs"]), "-n", str(n), "-c", "50",
            f"http://127.0.0.1:{self.port(path, 'http')}/small.html"]), self.p["ab_secs"] + 60)
        m = re.search(r"Requests per second:\s+([\d.]+)", out)
        done = re.search(r"Complete requests:\s+(\d+)", out)
        failed = re.search(r"Failed requests:\s+(\d+)", out)
        if rc != 0 or not m:
            self.error("ab", path, err or out or f"exit status {rc}")
            self.record("ab_cps", path, None)
            return
        nfail = int(failed.group(1)) if failed else 0
        ndone = int(done.group(1)) if done else 0
        if nfail:
            self.error("ab", path, f"{nfail} failed requests of {ndone} complete")
        self.record("ab_done", path, ndone)
        self.record("ab_cps", path, float(m.group(1)))
        self.record("ab_failed", path, nfail)
        p99 = re.search(r"^\s*99%\s+(\d+)", out, re.M)
        if p99:
            self.record("ab_p99", path, float(p99.group(1)))
        log(f"  ab {LABEL[path]:16} {float(m.group(1)):9.0f} conn/s  {ndone} done, failed {nfail}"
            + (f"  p99 {p99.group(1)} ms" if p99 else ""))

    def m_pgbench(self, path, mode):
        """pgbench for pg_secs seconds; tps from its output, latency percentiles from its
        per-transaction logs (-l: one line per transaction, its time in microseconds)."""
        name, extra = PG_MODES[mode]
        key = f"pg_{mode}"
        secs = self.p["pg_secs"]
        logs = self.work / "pglog"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        cpu = path != "direct" and mode == "ro"
        cpu0 = self.proxy_cpu(path, "pg") if cpu else None
        rc, out, err = run(self.client(path, [
            str(self.pg_bin / "pgbench"), "-h", "127.0.0.1", "-p", str(self.port(path, "pg")),
            "-U", PG_USER, "-c", str(PG_CLIENTS), "-j", "2", "-M", "extended", "-T", str(secs),
            "-l", f"--log-prefix={logs / 'tx'}"] + extra + ["postgres"]), secs + 60)
        cpu1 = self.proxy_cpu(path, "pg") if cpu else None
        lat = []
        for f in logs.glob("tx.*"):
            for line in f.read_text().splitlines():
                fields = line.split()
                if len(fields) > 2 and fields[2].isdigit():  # a failed one says "failed"
                    lat.append(int(fields[2]))
        shutil.rmtree(logs)
        tps = re.search(r"^tps = ([\d.]+)", out, re.M)
        done = re.search(r"number of transactions actually processed: (\d+)", out)
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if rc != 0 or not tps or not done or not lat:
            self.error(f"pgbench {name}", path, err or out or f"exit status {rc}")
            for m in ("tps", "p50", "p99") + (("cpu",) if cpu else ()):
                self.record(f"{key}_{m}", path, None)
            return
        nfail = int(failed.group(1)) if failed else 0
        if nfail:
            self.error(f"pgbench {name}", path, f"{nfail} failed transactions")
        lat.sort()
        p50, p99 = percentile(lat, 0.50) / 1000, percentile(lat, 0.99) / 1000
        self.record(f"{key}_tps", path, float(tps.group(1)))
        self.record(f"{key}_p50", path, p50)
        self.record(f"{key}_p99", path, p99)
        ndone = int(done.group(1))
        if cpu:
            self.record(f"{key}_cpu", path, (cpu1 - cpu0) / ndone * 1e5 if ndone else None)
        log(f"  pgbench {name} {LABEL[path]:16} {float(tps.group(1)):9.0f} tps  "
            f"p50 {p50:.3f} ms  p99 {p99:.3f} ms  ({ndone} transactions)"
            + (f"  proxies {(cpu1 - cpu0) / ndone * 1e5:.2f} CPU s/100k" if cpu and ndone else ""))

    def guarded(self, what, path, fn, *args):
        """A measurement that breaks (a client printing something unexpected) is reported
        as an error of that measurement; the others still run."""
        try:
            fn(*args)
        except (SetupError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
            self.error(what, path, f"{type(e).__name__}: {e}")

    def interleaved(self, title, fn):
        log(title)
        for r in range(self.p["rounds"]):
            for path in self.order(r):
                self.sample(title, path, fn, path)

    # -- egress: the proxy against an outbound rule

    def start_egress(self):
        """nginx in the root namespace with a small page and a big file (sparse: its zeros
        come from the page cache), and a qproxy pair with one outbound rule to it and an
        [egress] policy that allows it (127.0.0.1 named explicitly: loopback)."""
        w = self.work / "eg"
        (w / "www").mkdir(parents=True)
        shutil.copy2(self.work / "www" / "small.html", w / "www" / "small.html")
        with open(w / "www" / "big", "wb") as f:
            f.truncate(self.p["eg_mib"] << 20)
        os.chmod(w, 0o755)
        os.chmod(w / "www", 0o755)
        os.chmod(w / "www" / "big", 0o644)
        ng = self.start_nginx("nginx-egress", w, EGRESS["srv"], w / "www",
                              extra="\n    sendfile on;")
        wait_until(lambda: tcp_listening(EGRESS["srv"], ng.pid), 10, "nginx (egress)", [ng])
        qconf = w / "qproxy.toml"
        qconf.write_text(f"[[outbound_connections]]\nhostname = \"127.0.0.1\"\n"
                         f"vsock_port = {EGRESS['rule_vsock']}\ntcp_port = {EGRESS['srv']}\n\n"
                         f"[egress]\nvsock_port = {EGRESS['egress_vsock']}\n"
                         f"proxy_port = {EGRESS['proxy']}\ndns = true\n"
                         f"allow = [\"127.0.0.1:{EGRESS['srv']}\", \"*.dns.bench:443\"]\n")
        env = self.qproxy_env()
        env["QPROXY_STATUS_SOCKET"] = str(w / "status.sock")
        ctl = ["--control-port", str(EGRESS["control"])]
        host = self.procs.start("qproxy-eg-host", [str(self.bin), "host", "--config", str(qconf),
                                                   *ctl, "--vsock-dir", str(self.vdir), "4"],
                                env=env)
        for port in ("rule_vsock", "egress_vsock"):
            sock = self.vdir / f"3.{EGRESS[port]}"
            wait_until(lambda: unix_listening(sock, host.pid), 10, f"qproxy host half on {sock}",
                       [host])
        encl = self.procs.start("qproxy-eg-enclave",
                                [str(self.bin), "enclave", "--config", str(qconf), *ctl,
                                 "--vsock-dir", str(self.vdir), "--cid", "4"], ns=self.ns, env=env)
        for port in ("srv", "proxy"):
            wait_until(lambda: tcp_listening(EGRESS[port], encl.pid), 10,
                       f"qproxy enclave half on :{EGRESS[port]}", [encl])
        self.eg_halves = [host.pid, encl.pid]
        for path in EGRESS_PATHS:
            rc, out, err = run(self.eg_client(path, ["curl", "-sS", "--max-time", "10", "-o",
                                                     "/dev/null", "-w", "%{http_code}",
                                                     self.eg_url("small.html")]), 20)
            if rc != 0 or out != "200":
                raise SetupError(f"egress: GET via {EGRESS_LABEL[path]} failed: {out} {err}")
        # Once, untimed: the big file's pages into the page cache before either path reads it.
        run(self.eg_client("rule", ["curl", "-sS", "-o", "/dev/null", self.eg_url("big")]), 120)
        self.eg_ready = True
        log("egress: nginx in the root namespace answers through the outbound rule and the "
            "egress proxy")

    def eg_url(self, name):
        return f"http://127.0.0.1:{EGRESS['srv']}/{name}"

    def eg_client(self, path, argv):
        """In the enclave namespace; egress: told the proxy (curl -x, ab -X)."""
        if path == "egress":
            opt = ["-x", f"http://127.0.0.1:{EGRESS['proxy']}"] if argv[0] == "curl" else \
                ["-X", f"127.0.0.1:{EGRESS['proxy']}"]
            argv = [argv[0]] + opt + argv[1:]
        return ["ip", "netns", "exec", self.ns] + argv

    def eg_interleaved(self, title, fn):
        log(title)
        for r in range(self.p["rounds"]):
            for path in EGRESS_PATHS[r % 2:] + EGRESS_PATHS[:r % 2]:
                self.sample(title, path, fn, path)

    def m_eg_bulk(self, path):
        cpu0 = sum(cpu_seconds(p) for p in self.eg_halves)
        rc, out, err = run(self.eg_client(path, ["curl", "-sS", "-o", "/dev/null", "-w",
                                                 "%{size_download} %{speed_download}",
                                                 self.eg_url("big")]), 120)
        cpu1 = sum(cpu_seconds(p) for p in self.eg_halves)
        f = out.split()
        if rc != 0 or len(f) != 2 or int(f[0]) != self.p["eg_mib"] << 20:
            self.error("egress curl", path, err or out or f"exit status {rc}")
            self.record("eg_gbps", path, None)
            self.record("eg_cpu", path, None)
            return
        gbps = float(f[1]) * 8 / 1e9
        self.record("eg_gbps", path, gbps)
        self.record("eg_cpu", path, (cpu1 - cpu0) / (int(f[0]) / 1e9))
        log(f"  curl {EGRESS_LABEL[path]:14} {gbps:7.2f} Gbit/s  qproxy "
            f"{(cpu1 - cpu0) / (int(f[0]) / 1e9):.3f} CPU s/GB")

    def m_eg_ab(self, path):
        rc, out, err = run(self.eg_client(path, [
            "ab", "-q", "-r", "-s", "10", "-t", str(self.p["ab_secs"]), "-n",
            str(self.p["ab_n"]), "-c", "50", self.eg_url("small.html")]), self.p["ab_secs"] + 60)
        m = re.search(r"Requests per second:\s+([\d.]+)", out)
        failed = re.search(r"Failed requests:\s+(\d+)", out)
        nfail = int(failed.group(1)) if failed else 0
        if rc != 0 or not m or nfail:
            self.error("egress ab", path, err or out or f"exit status {rc}")
            self.record("eg_cps", path, None)
            return
        self.record("eg_cps", path, float(m.group(1)))
        log(f"  ab {EGRESS_LABEL[path]:14} {float(m.group(1)):9.0f} conn/s")

    def m_dns(self):
        """dnsperf over UDP for DNS_NAMES allowed names, A queries, for dns_secs; the
        enclave half's CPU per 100,000 answered."""
        qfile = self.work / "eg" / "queries"
        qfile.write_text("".join(f"n{i}.dns.bench A\n" for i in range(DNS_NAMES)))
        encl = self.eg_halves[1]
        cpu0 = cpu_seconds(encl)
        rc, out, err = run(["ip", "netns", "exec", self.ns, "dnsperf", "-s", "127.0.0.1", "-d",
                            str(qfile), "-l", str(self.p["dns_secs"]), "-c", "4", "-q", "200"],
                           self.p["dns_secs"] + 30)
        cpu1 = cpu_seconds(encl)
        qps = re.search(r"Queries per second:\s+([\d.]+)", out)
        done = re.search(r"Queries completed:\s+(\d+)", out)
        noerror = re.search(r"NOERROR (\d+)", out)
        if rc != 0 or not qps or not done or not noerror or noerror.group(1) != done.group(1):
            self.error("dnsperf", "dns", err or out or f"exit status {rc}")
            self.record("dns_qps", "dns", None)
            self.record("dns_cpu", "dns", None)
            return
        n = int(done.group(1))
        self.record("dns_qps", "dns", float(qps.group(1)))
        self.record("dns_cpu", "dns", (cpu1 - cpu0) / n * 1e5 if n else None)
        log(f"  dnsperf {float(qps.group(1)):9.0f} queries/s, {n} answered NOERROR; enclave half "
            f"{(cpu1 - cpu0) / max(n, 1) * 1e5:.3f} CPU s per 100k")

    EG_METRICS = [
        # key, label, better, decimals, the target for egress / rule
        ("eg_gbps", "curl, one stream, Gbit/s", "higher", 2, "at least 0.95"),
        ("eg_cpu", "qproxy CPU s per GB (both halves)", "lower", 3, "—"),
        ("eg_cps", "ab new connections/s (50 concurrent)", "higher", 0, "at least 0.50"),
    ]

    def egress_rows(self):
        head = ["figure", "better", "outbound rule", "egress proxy", "egress / rule",
                "target (issue 11)"]
        rows = []
        for key, label, better, dec, target in self.EG_METRICS:
            if key not in self.results:
                continue
            med = {p: self.median(key, p) for p in EGRESS_PATHS}
            rows.append([label, better, self.fmt(med["rule"], dec), self.fmt(med["egress"], dec),
                         self.ratio(med["egress"], med["rule"]), target])
        return head, rows

    # -- startup and size

    def m_startup(self):
        reps = self.p["startup_reps"]
        d = self.work / "s"
        d.mkdir()
        conf = self.work / "startup.toml"
        conf.write_text(f"[[inbound_connections]]\nhost_port = {STARTUP_PORT}\n"
                        f"enclave_port = {STARTUP_PORT}\nvsock_port = {STARTUP_PORT}\n")
        sock = d / f"4.{STARTUP_PORT}"
        cases = {
            "qproxy host (exec -> TCP listening)":
                ([str(self.bin), "host", "--config", str(conf), "--vsock-dir", str(d), "4"],
                 lambda: connects(socket.AF_INET, ("127.0.0.1", STARTUP_PORT))),
            "qproxy enclave (exec -> vsock/Unix listening)":
                ([str(self.bin), "enclave", "--config", str(conf), "--vsock-dir", str(d),
                  "--cid", "4"], lambda: connects(socket.AF_UNIX, str(sock))),
            "socat (exec -> TCP listening)":
                (["socat", f"TCP-LISTEN:{STARTUP_PORT},fork,reuseaddr,backlog=1024,"
                  "bind=127.0.0.1", f"UNIX-CONNECT:{sock}"],
                 lambda: connects(socket.AF_INET, ("127.0.0.1", STARTUP_PORT))),
            "socat (exec -> Unix listening)":
                (["socat", f"UNIX-LISTEN:{sock},fork,backlog=1024",
                  f"TCP:127.0.0.1:{STARTUP_PORT}"],
                 lambda: connects(socket.AF_UNIX, str(sock))),
        }
        # socat -b 262144: the same starts with its buffer option, measured, not assumed.
        for name in [k for k in cases if k.startswith("socat ")]:
            argv, ready = cases[name]
            cases[name.replace("socat ", "socat -b 262144 ", 1)] = (
                argv[:1] + ["-b", "262144"] + argv[1:], ready)
        # What any process start costs on this machine, for scale: spawn and reap /bin/true.
        spawn = []
        for _ in range(reps * 4):
            t0 = time.perf_counter()
            subprocess.run(["/bin/true"], timeout=10)
            spawn.append(time.perf_counter() - t0)
        self.spawn_ms = statistics.median(spawn) * 1000
        log(f"startup: {reps} starts of each, time from exec to listening")
        env = self.qproxy_env()
        for r in range(reps):
            for name, (argv, ready) in cases.items():  # interleaved too
                if sock.exists():
                    sock.unlink()
                wait_until(lambda: not tcp_listening(STARTUP_PORT), 10, "startup port to close")
                t0 = time.perf_counter()
                p = self.procs.start("startup", argv, env=env)
                dt = None
                while time.perf_counter() - t0 < 5:
                    if ready():
                        dt = time.perf_counter() - t0
                        break
                    if p.poll() is not None:
                        break
                self.procs.stop(p)
                if dt is None:
                    self.error("startup", name, f"not listening within 5 s (status {p.returncode})")
                self.startup.setdefault(name, []).append(dt)
        for name, v in self.startup.items():
            ok = [x for x in v if x is not None]
            if ok:
                log(f"  {name}: median {statistics.median(ok) * 1000:.2f} ms "
                    f"(min {min(ok) * 1000:.2f}, max {max(ok) * 1000:.2f})")

    # -- scale

    def open_through_qproxy(self, n, secs):
        """Start an opener for n connections; returns (process, its report or None)."""
        opener = self.procs.start(
            "opener", [PYTHON, str(Path(__file__).resolve()), "open",
                       str(FRONT["qproxy"]["hold"]), str(n), str(secs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = b""
        r, _, _ = select.select([opener.stdout], [], [], secs + 30)
        if r:
            line = opener.stdout.readline()
        try:
            return opener, json.loads(line)
        except ValueError:
            return opener, None

    def close_and_wait_release(self, opener, base):
        """Close the opener's connections; seconds until both halves are back to their
        fd counts in base, or None if not within 30 s."""
        t0 = time.monotonic()
        opener.stdin.close()
        try:
            opener.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        self.procs.stop(opener)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(fd_count(pid) <= base[h][1] for h, pid in self.halves.items()):
                return time.monotonic() - t0
            time.sleep(0.05)
        return None

    def m_scale(self):
        want = self.p["scale_n"]
        # Each half holds two fds per connection; without CAP_SYS_RESOURCE nothing can
        # lift the hard limit, so hold as many as it allows and say so.
        cap = (NOFILE - SCALE_FD_SPARE) // 2 // 100 * 100
        n = min(want, cap)
        self.scale["want"] = want
        if n < want:
            self.notes.append(
                f"scale: {want:,} connections need {2 * want:,}+ fds in each qproxy half, but "
                f"RLIMIT_NOFILE's hard limit is {NOFILE:,} here and cannot be raised (root "
                f"lacks CAP_SYS_RESOURCE), so {n:,} were held; RSS per connection does not "
                "depend on the count.")
        log(f"scale: {n} idle connections held through qproxy")
        hold = self.procs.start("holder", [PYTHON, str(Path(__file__).resolve()), "hold",
                                           str(SERVER["hold"]), "900"], ns=self.ns)
        wait_until(lambda: tcp_listening(SERVER["hold"], hold.pid), 10, "holder", [hold])
        halves = self.halves = {"host": self.q_host.pid, "enclave": self.q_enclave.pid}
        base = {h: (status_kib(pid, "VmRSS"), fd_count(pid)) for h, pid in halves.items()}
        opener, res = self.open_through_qproxy(n, 120)
        if res is None:
            self.error("scale", "qproxy", "the opener reported nothing")
            self.procs.stop(opener)
            self.procs.stop(hold)
            return
        self.scale["n"] = n
        self.scale["opened"] = res["ok"]
        self.scale["failed"] = res["failed"] + res["pending"]
        self.scale["open_secs"] = res["seconds"]
        if res["ok"] != n:
            self.error("scale", "qproxy", f"{res['ok']} of {n} connections reached the "
                       f"server ({res['failed']} failed, {res['pending']} never answered)")
        time.sleep(0.5)  # let every relay settle after its last byte
        for h, pid in halves.items():
            rss, fds = status_kib(pid, "VmRSS"), fd_count(pid)
            self.scale[h] = {"rss0": base[h][0], "fds0": base[h][1], "rss": rss, "fds": fds,
                             "hwm": status_kib(pid, "VmHWM"),
                             "per_conn": (rss - base[h][0]) * 1024 / max(res["ok"], 1)}
        log(f"  opened {res['ok']}/{n} in {res['seconds']:.2f} s; "
            + "; ".join(f"{h}: RSS {self.scale[h]['rss'] / 1024:.1f} MiB, "
                        f"{self.scale[h]['fds']} fds" for h in halves))
        # One small-request figure while the idle connections are held: a poll() loop
        # scans every registered fd on each pass, so this shows what idle ones cost.
        pn = self.p["scale_probe_n"]
        rc, out, err = run(["redis-benchmark", "-h", "127.0.0.1", "-p",
                            str(FRONT["qproxy"]["redis"]), "-t", "get", "-n", str(pn), "-c",
                            "50", "--csv", "--precision", "3"], 120)
        m = re.search(r'"GET","([\d.]+)","[\d.]+","[\d.]+","([\d.]+)","[\d.]+","([\d.]+)"', out)
        if m:
            self.scale["probe"] = tuple(float(x) for x in m.groups())
            log(f"  redis GET with {res['ok']} idle held: {m.group(1)} req/s, "
                f"p50 {m.group(2)} ms, p99 {m.group(3)} ms")
        else:
            self.error("redis GET with idle connections held", "qproxy", err or out)
        rel = self.close_and_wait_release(opener, base)
        self.scale["release_secs"] = rel
        for h, pid in halves.items():
            self.scale[h]["fds_after"] = fd_count(pid)
            self.scale[h]["rss_after"] = status_kib(pid, "VmRSS")
        if rel is None:
            self.error("scale", "qproxy", "fds not released 30 s after the clients closed: "
                       + ", ".join(f"{h} {self.scale[h]['fds_after']} (before {base[h][1]})"
                                   for h in halves))
        else:
            log(f"  all closed; both halves back to their fd count in {rel:.2f} s")
        if n < want:
            self.m_over_limit(want, base)
        self.procs.stop(hold)

    def m_over_limit(self, want, base):
        """Ask for more connections than the fd limit allows: qproxy should refuse the
        excess cleanly, keep the rest, and serve again once they are gone."""
        secs = 20
        log(f"  over the fd limit: {want} connections asked for, {secs} s bound")
        opener, res = self.open_through_qproxy(want, secs)
        fds = {h: fd_count(pid) for h, pid in self.halves.items()}
        rel = self.close_and_wait_release(opener, base) if res else None
        if res is None:
            self.procs.stop(opener)
        rc, out, err = run(["redis-cli", "-h", "127.0.0.1", "-p", str(FRONT["qproxy"]["redis"]),
                            "PING"], 10)
        alive = rc == 0 and "PONG" in out
        self.scale["over"] = {"want": want, "res": res, "fds": fds, "release_secs": rel,
                              "serves_after": alive}
        log(f"  over the fd limit: {res}; fds at the end {fds}; released in {rel}; "
            f"PING afterwards {'ok' if alive else 'FAILED'}")
        if not alive:
            self.error("scale", "qproxy", "no longer serves after running out of fds: "
                       + (err or out))

    # -- the whole run

    def wait_quiet(self, limit):
        """Other people's builds and tests move every figure: wait, up to limit seconds,
        for a 3-second window in which the machine is at most 20% busy."""
        deadline = time.monotonic() + limit
        said = 0.0
        while True:
            (b0, t0), (b1, t1) = machine_busy(), (time.sleep(3), machine_busy())[1]
            busy = 100 * (b1 - b0) / max(t1 - t0, 0.01)
            if busy <= 20 or time.monotonic() >= deadline:
                break
            if time.monotonic() - said >= 30:
                said = time.monotonic()
                log(f"machine {busy:.0f}% busy (other work); waiting for it to quieten, "
                    f"{deadline - time.monotonic():.0f} s left")
        self.busy_at_start = busy
        log(f"machine {busy:.0f}% busy just before the start")
        self.t_start = time.monotonic()
        self.load0 = loadavg()
        self.busy0, self.others0 = machine_busy(), self.others_cpu()

    def main(self):
        self.wait_quiet(self.wait_quiet_limit)
        self.setup()
        log(f"{'quick' if self.quick else 'full'} run; namespace {self.ns}; "
            f"binary {self.bin_src} ({self.bin.stat().st_size} bytes)")
        want = self.wants
        if want("startup"):
            self.guarded("startup", "qproxy", self.m_startup)
        self.start_servers()
        self.start_qproxy()
        self.start_socat()
        self.smoke()
        # Scale first: qproxy's memory baseline is then a freshly started process.
        if want("scale"):
            self.guarded("scale", "qproxy", self.m_scale)
        if want("iperf"):
            self.interleaved("iperf3, 1 stream", lambda path: self.m_iperf(path, 1))
            self.interleaved("iperf3, 8 streams", lambda path: self.m_iperf(path, 8))
        if want("redis"):
            self.interleaved("redis-benchmark GET/SET, 50 clients", self.m_redis)
        if want("ab"):
            self.interleaved(f"ab, {self.p['ab_n']} new connections, 50 concurrent", self.m_ab)
        if want("egress") or want("dns"):
            self.guarded("egress setup", "egress", self.start_egress)
        if want("dns") and self.eg_ready:
            log(f"dnsperf against the enclave half's DNS server, {DNS_NAMES} allowed names")
            for r in range(self.p["rounds"]):
                self.sample("dnsperf", "dns", self.m_dns)
        if want("egress"):
            if self.eg_ready:
                self.eg_interleaved(f"egress: curl, {self.p['eg_mib']} MiB, one stream",
                                    self.m_eg_bulk)
                self.eg_interleaved(f"egress: ab, {self.p['ab_n']} new connections, "
                                    "50 concurrent", self.m_eg_ab)
        if want("pgbench"):
            for mode in self.p["pg_modes"]:
                self.interleaved(f"pgbench {PG_MODES[mode][0]}, {PG_CLIENTS} clients, -M extended, "
                                 f"-T {self.p['pg_secs']}",
                                 lambda path, mode=mode: self.m_pgbench(path, mode))
        self.elapsed = time.monotonic() - self.t_start
        for p in (self.q_host, self.q_enclave):
            if p.poll() is not None:
                self.error("qproxy", "qproxy", f"{p.bench_name} exited with status {p.returncode}")

    def cleanup(self):
        self.stop_postgres()
        self.procs.stop_all()
        if self.ns_created:
            subprocess.run(["ip", "netns", "delete", self.ns], timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # -- report

    METRICS = [
        # key, label, better, decimals
        ("iperf1_gbps", "iperf3 1 stream, Gbit/s", "higher", 2),
        ("iperf8_gbps", "iperf3 8 streams, Gbit/s", "higher", 2),
        ("iperf1_cpu", "proxy CPU s per GB, 1 stream", "lower", 3),
        ("iperf8_cpu", "proxy CPU s per GB, 8 streams", "lower", 3),
        ("redis_get_rps", "redis GET, req/s (50 clients)", "higher", 0),
        ("redis_get_p50", "redis GET p50, ms", "lower", 3),
        ("redis_get_p99", "redis GET p99, ms", "lower", 3),
        ("redis_set_rps", "redis SET, req/s (50 clients)", "higher", 0),
        ("redis_set_p50", "redis SET p50, ms", "lower", 3),
        ("redis_set_p99", "redis SET p99, ms", "lower", 3),
        ("redis_cpu", "proxy CPU s per 100k requests, redis GET+SET", "lower", 3),
        ("ab_cps", "ab new connections/s (50 concurrent)", "higher", 0),
        ("ab_p99", "ab p99 connection time, ms", "lower", 0),
        ("pg_ro_tps", f"pgbench select-only, tps ({PG_CLIENTS} clients)", "higher", 0),
        ("pg_ro_p50", "pgbench select-only p50, ms", "lower", 3),
        ("pg_ro_p99", "pgbench select-only p99, ms", "lower", 3),
        ("pg_ro_cpu", "proxy CPU s per 100k requests, pgbench select-only", "lower", 3),
        ("pg_rw_tps", f"pgbench tpcb-like, tps ({PG_CLIENTS} clients)", "higher", 0),
        ("pg_rw_p50", "pgbench tpcb-like p50, ms", "lower", 3),
        ("pg_rw_p99", "pgbench tpcb-like p99, ms", "lower", 3),
    ]

    def median(self, key, path):
        v = [x for x in self.results.get(key, {}).get(path, []) if x is not None]
        return statistics.median(v) if v else None

    @staticmethod
    def fmt(v, dec):
        if v is None:
            return "ERR"
        return f"{v:,.{dec}f}" if dec == 0 else f"{v:.{dec}f}"

    @staticmethod
    def ratio(a, b):
        if a is None or b is None or b == 0:
            return "—"
        return f"{a / b:.2f}"

    def table_rows(self):
        head = ["figure", "better", "direct", "qproxy", "socat", "socat -b 262144",
                "qproxy / socat -b", "qproxy / socat", "qproxy / direct"]
        rows = []
        for key, label, better, dec in self.METRICS:
            if key not in self.results:  # not measured in this run (--quick, ONLY=)
                continue
            med = {p: self.median(key, p) for p in PATHS}
            cells = []
            for p in PATHS:
                if p == "direct" and key.endswith("_cpu"):
                    cells.append("n/a")
                else:
                    cells.append(self.fmt(med[p], dec))
            rows.append([label, better] + cells + [
                self.ratio(med["qproxy"], med["socatb"]), self.ratio(med["qproxy"], med["socat"]),
                "—" if key.endswith("_cpu") else self.ratio(med["qproxy"], med["direct"])])
        nf = "not feasible (20,000 processes)"
        sc = self.scale
        if "host" in sc:
            rss = (sc["host"]["rss"] + sc["enclave"]["rss"]) / 1024
            per = (sc["host"]["per_conn"] + sc["enclave"]["per_conn"]) / 1024
            rows.append([f"{sc['n']:,} idle conns: RSS of both halves, MiB", "lower", "n/a",
                         f"{rss:.1f}", nf, nf, "—", "—", "—"])
            rows.append([f"{sc['n']:,} idle conns: RSS per connection (both halves), KiB",
                         "lower", "n/a", f"{per:.2f}", nf, nf, "—", "—", "—"])
        st = {k: statistics.median([x for x in v if x is not None]) * 1000
              for k, v in self.startup.items() if any(x is not None for x in v)}
        qh = st.get("qproxy host (exec -> TCP listening)")
        qe = st.get("qproxy enclave (exec -> vsock/Unix listening)")
        sh = st.get("socat (exec -> TCP listening)")
        se = st.get("socat (exec -> Unix listening)")
        sbh = st.get("socat -b 262144 (exec -> TCP listening)")
        sbe = st.get("socat -b 262144 (exec -> Unix listening)")
        f2 = lambda v: "ERR" if v is None else f"{v:.2f}"
        if self.startup:
            rows.append(["startup, host half: exec -> TCP listening, ms", "lower", "n/a",
                         f2(qh), f2(sh), f2(sbh), self.ratio(qh, sbh), self.ratio(qh, sh), "—"])
            rows.append(["startup, enclave half: exec -> vsock (Unix) listening, ms", "lower",
                         "n/a", f2(qe), f2(se), f2(sbe), self.ratio(qe, sbe), self.ratio(qe, se),
                         "—"])
        socat_size = Path(shutil.which("socat")).stat().st_size
        rows.append(["binary size, bytes", "lower", "n/a", f"{self.bin.stat().st_size:,}",
                     f"{socat_size:,} (dynamic)", f"{socat_size:,} (dynamic)", "—", "—", "—"])
        return head, rows

    @staticmethod
    def text_table(head, rows):
        w = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        line = lambda r: "  ".join(str(c).rjust(w[i]) if i > 1 else str(c).ljust(w[i])
                                   for i, c in enumerate(r))
        return "\n".join([line(head), "  ".join("-" * x for x in w)] + [line(r) for r in rows])

    @staticmethod
    def md_table(head, rows, text_cols=2):
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join(["---"] * text_cols + ["--:"] * (len(head) - text_cols)) + "|"]
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        return "\n".join(out)

    def raw_rows(self):
        head = ["figure"] + [LABEL[p] for p in PATHS]
        rows = []
        for key, label, _, dec in self.METRICS:
            if key not in self.results:
                continue
            cells = []
            for p in PATHS:
                vals = self.results[key].get(p, [])
                oth = self.others.get(key, {}).get(p, [])
                cells.append(", ".join(
                    self.fmt(x, dec) + ("\\*" if i < len(oth) and oth[i] > OTHERS_MAX else "")
                    for i, x in enumerate(vals)) or "n/a")
            rows.append([label] + cells)
        return head, rows

    def others_summary(self):
        shares = self.sample_others
        marked = sum(1 for x in shares if x > OTHERS_MAX)
        return (f"Each sample's share of the machine taken by other processes: median "
                f"{100 * statistics.median(shares) if shares else 0:.0f}%, max "
                f"{100 * max(shares, default=0):.0f}%; \\* marks the {marked} of {len(shares)} samples above "
                f"{100 * OTHERS_MAX:.0f}%, kept because their one retry or the run's retry budget "
                f"({self.p['retry_secs']} s; none in quick mode) was used up. "
                f"{self.retried} sample(s) were measured again because of other load.")

    def qproxy_stderr(self):
        """Per half: (name, line count, [(count, kind, one example)]). A kind is a line
        without its time, connection id, addresses and numbers, named after the rule's
        server, so that 60 resets at the end of iperf3 tests read as one entry."""
        svc_of = {str(p): s for s, p in FRONT["qproxy"].items()}
        svc_name = {"iperf": "iperf3", "redis": "redis", "http": "nginx", "hold": "scale holder",
                    "pg": "postgres"}
        out = []
        for name in ("qproxy-host", "qproxy-enclave"):
            f = self.work / f"{name}.log"
            lines = f.read_text(errors="replace").splitlines() if f.exists() else []
            kinds = {}
            for ln in lines:
                k = re.sub(r"^\S+Z\s+", "", ln)
                m = re.search(r"inbound (\d+):", k)
                k = re.sub(r"\bc\d+\b", "cN", k)
                k = re.sub(r"\d+(\.\d+){3}:\d+", "ADDR", k)
                k = re.sub(r"(?<![A-Za-z])\d+", "N", k)
                if m and m.group(1) in svc_of:
                    k = f"[{svc_name[svc_of[m.group(1)]]} rule] {k}"
                c, ex = kinds.get(k, (0, ln))
                kinds[k] = (c + 1, ex)
            out.append((name, len(lines),
                         sorted(((c, k, ex) for k, (c, ex) in kinds.items()), reverse=True)))
        return out

    def git_state(self):
        """HEAD and whether src/ differs from it, read when the run starts: others may
        commit while it runs, and the binary is the one copied at the start."""
        commit = sh("git", "rev-parse", "--short", "HEAD")
        dirty = bool(sh("git", "status", "--porcelain", "--", "src", "Makefile"))
        return commit, dirty

    def meta(self):
        commit, dirty = self.git0
        if self.commit:
            text = f"{self.commit} (the binary's)"
        else:
            text = f"{commit} (repository HEAD when the run started)"
            if dirty:
                text += "; the working tree had uncommitted changes in src/ or the Makefile"
            now = sh("git", "rev-parse", "--short", "HEAD")
            if now != commit:
                text += f"; HEAD moved to {now} during the run"
        cpu = "?"
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = None
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": text,
            "nproc": os.cpu_count(), "cpu": cpu, "mem": mem,
            "kernel": platform.release(),
            "sha": hashlib.sha256(self.bin.read_bytes()).hexdigest()[:16],
            "size": self.bin.stat().st_size,
            "tools": ", ".join(
                f"{name} {m.group(1) if m else '?'}" for name, m in (
                    ("socat", re.search(r"socat version (\S+)", sh("socat", "-V"))),
                    ("iperf3", re.search(r"iperf (\S+)", sh("iperf3", "--version"))),
                    ("redis-benchmark", re.search(r"redis-benchmark (\S+)",
                                                  sh("redis-benchmark", "--version"))),
                    ("nginx", re.search(r"nginx/(\S+)", sh("sh", "-c", "nginx -v 2>&1"))),
                    ("ab", re.search(r"Version (\S+)", sh("ab", "-V"))),
                    ("pgbench", re.search(r"(\d+\.\d+)", sh(str(self.pg_bin / "pgbench"),
                                                              "--version")
                                          if self.pg_bin else "")),
                    ("python", re.search(r"(\S+)", platform.python_version())))),
        }

    def report(self):
        (_, total1), others1 = machine_busy(), self.others_cpu()
        total0 = self.busy0[1]
        others = max(0.0, others1 - self.others0)
        avail = total1 - total0
        load = (f"{self.busy_at_start:.0f}% busy just before the start; "
                f"load average {self.load0} at the start, {loadavg()} at the end; processes "
                f"other than the bench's used about {others:.0f} CPU s of the {avail:.0f} "
                f"available during the run ({100 * others / max(avail, 1):.0f}%)")
        head, rows = self.table_rows()
        m = self.meta()
        mode = "quick (--quick)" if self.quick else "full"
        p = self.p
        print()
        print(f"qproxy bench, {mode}: commit {m['commit']}, {m['nproc']} cores, "
              f"kernel {m['kernel']}, {m['date']}; medians of {p['rounds']} round(s)")
        print(self.text_table(head, rows))
        dq, dc = self.median("dns_qps", "dns"), self.median("dns_cpu", "dns")
        dns_line = None
        if "dns_qps" in self.results:
            dns_line = (f"DNS mode: dnsperf -c 4 -q 200 over UDP, {DNS_NAMES} allowed names: "
                        f"{self.fmt(dq, 0)} queries/s, enclave half {self.fmt(dc, 3)} CPU s per "
                        "100k queries")
            print("\n" + dns_line)
        eh, er = self.egress_rows()
        if er:
            print("\negress, client in the enclave namespace -> server in the root namespace:")
            print(self.text_table(eh, er))
        if self.errors:
            print(f"\n{len(self.errors)} error(s):")
            for e in self.errors:
                print("  " + e)
        stderr = self.qproxy_stderr()
        for name, nlines, kinds in stderr:
            if nlines:
                print(f"\n{name} stderr: {nlines} line(s), by kind:")
                for c, k, ex in kinds[:8]:
                    print(f"  {c:6d} x {k[:150]}")
        print(f"\n{load}")
        print(self.others_summary().replace("\\*", "*"))
        print(f"total time {self.elapsed:.0f} s; written to {self.out}")

        sc = self.scale
        md = []
        md.append(f"# qproxy benchmark results ({'quick' if self.quick else 'full'} run)\n")
        md.append(f"Written by `bench/run.sh{' --quick' if self.quick else ''}` "
                  f"on {m['date']}; the run took {self.elapsed:.0f} s. "
                  "See [README.md](README.md) for what each figure means.\n")
        md.append("| | |\n|---|---|")
        md.append(f"| qproxy commit | {m['commit']} |")
        try:
            shown = f"`{self.bin_src.relative_to(REPO)}`"
        except ValueError:
            shown = ("the static binary" if self.bin_src.is_relative_to(self.work)
                     else f"`{self.bin_src}`")
        md.append(f"| binary | {shown}, {m['size']:,} bytes, sha256 `{m['sha']}…`"
                  + (f"; {self.binary_note}" if self.binary_note else "") + " |")
        md.append(f"| machine | {m['nproc']} cores (nproc), {m['cpu']}, {m['mem']:,} MiB RAM |")
        md.append(f"| kernel | {m['kernel']} |")
        md.append(f"| tools | {m['tools']} |")
        md.append(f"| rounds | {p['rounds']} per figure, interleaved; medians shown |")
        md.append(f"| other load | {load} |")
        md.append(f"| sizes | iperf3 {p['iperf_secs']} s per test; redis-benchmark "
                  f"-n {p['redis_n']:,} on every path; ab -n {p['ab_n']:,} "
                  f"-t {p['ab_secs']} (whichever ends first); {p['scale_n']:,} idle "
                  f"connections asked for; {p['startup_reps']} starts; pgbench "
                  f"{' and '.join(PG_MODES[x][0] for x in p['pg_modes'])}, -T {p['pg_secs']}, "
                  f"{PG_CLIENTS} clients, scale {PG_SCALE} |\n")
        md.append("**Client, proxies and servers all share the machine's "
                  f"{m['nproc']} cores**, so every figure includes the client's and the "
                  "server's CPU use competing with the proxies': they compare the paths with "
                  "each other on this machine, and are not what qproxy does with cores of its "
                  "own.\n")
        md.append("Topology, for every proxied path: client in the root network namespace "
                  "-> front proxy (root ns, 127.0.0.1:port) -> Unix socket standing in for "
                  "vsock -> back proxy in the enclave namespace (`qpbench-*`, loopback only) "
                  "-> server on 127.0.0.1 there. **direct** = the same client run inside the "
                  "enclave namespace (`ip netns exec`) against the same server instance, "
                  "no proxy. qproxy = `qproxy host --vsock-dir D 4` + `qproxy enclave "
                  "--vsock-dir D --cid 4`, one inbound rule per server. socat = "
                  "`socat TCP-LISTEN:P,fork,reuseaddr,backlog=1024,bind=127.0.0.1 "
                  "UNIX-CONNECT:D/sock` + `socat UNIX-LISTEN:D/sock,fork,backlog=1024 "
                  "TCP:127.0.0.1:PORT`; socat -b 262144 the same with `-b 262144` on both.\n")
        md.append("## Results\n")
        md.append(self.md_table(head, rows) + "\n")
        md.append("Ratios are qproxy's figure divided by the other path's: above 1 is better "
                  "for a \"higher\" figure, below 1 for a \"lower\" one. The one to quote is "
                  "qproxy / socat -b: socat with a buffer as large as qproxy's 256 KiB kernel "
                  "pipe; plain socat's 8 KiB flatters qproxy on bulk transfers.\n")
        eh, er = self.egress_rows()
        if er:
            md.append("## Egress: the proxy against an outbound rule\n")
            md.append("The other direction: curl and ab in the enclave namespace, nginx (1 "
                      "worker, sendfile) in the root namespace, one qproxy pair of its own "
                      "with an outbound rule to nginx (`hostname = \"127.0.0.1\"`) and an "
                      "`[egress]` policy allowing it; the egress path tells the client the "
                      "proxy (`curl -x http://127.0.0.1:PORT`, which then sends the request "
                      "in absolute form; `ab -X`), so each connection costs the request to "
                      "the host half and its answer on top of the rule's path. Medians of "
                      f"{p['rounds']} round(s), interleaved; curl downloads "
                      f"{p['eg_mib']} MiB (a sparse file).\n")
            md.append(self.md_table(eh, er) + "\n")
        if dns_line:
            md.append("## The DNS mode's server\n")
            md.append(f"{dns_line} (medians of {p['rounds']} run(s) of {p['dns_secs']} s). "
                      "The enclave half of the egress pair runs with `dns = true` and "
                      "`allow = [\"*.dns.bench:443\"]`; each name's first query gives it its "
                      "127.100.x address and listener, the rest are answered from what the "
                      "half holds. CPU: the enclave half's user+system time during the run, "
                      "per 100,000 queries answered; dnsperf shares the cores.\n")
        if "host" in sc:
            md.append("## Scale: idle connections through qproxy\n")
            md.append(f"{sc['opened']:,} of {sc['n']:,} connections opened end to end (each "
                      "waited for a byte from the server) in "
                      f"{sc['open_secs']:.2f} s, {sc['failed']} failed. socat: not feasible "
                      "(20,000 processes).\n")
            md.append("| | host half | enclave half |\n|---|--:|--:|")
            for k, lab, f in (("rss0", "VmRSS before, KiB", "{:,}"),
                              ("rss", f"VmRSS with {sc['opened']:,} idle, KiB", "{:,}"),
                              ("hwm", "VmHWM, KiB", "{:,}"),
                              ("per_conn", "RSS per connection, bytes", "{:,.0f}"),
                              ("fds0", "fds before", "{:,}"),
                              ("fds", f"fds with {sc['opened']:,} idle", "{:,}"),
                              ("fds_after", "fds after the clients closed", "{:,}"),
                              ("rss_after", "VmRSS after the clients closed, KiB", "{:,}")):
                md.append(f"| {lab} | {f.format(sc['host'][k])} | "
                          f"{f.format(sc['enclave'][k])} |")
            rel = sc.get("release_secs")
            md.append("")
            md.append("Both halves were back to their fd count before "
                      + (f"{rel:.2f} s after the clients closed." if rel is not None
                         else "**not within 30 s** after the clients closed."))
            md.append("")
            if "probe" in sc:
                md.append(f"With the {sc['opened']:,} idle connections held, redis-benchmark "
                          f"GET (-n {p['scale_probe_n']:,}, 50 clients) through qproxy: "
                          f"{sc['probe'][0]:,.0f} req/s, p50 {sc['probe'][1]:.3f} ms, "
                          f"p99 {sc['probe'][2]:.3f} ms (compare the table's GET row, "
                          "measured with no idle connections).\n")
            ov = sc.get("over")
            if ov:
                r = ov["res"] or {}
                md.append(f"Over the fd limit: {ov['want']:,} connections asked for at once "
                          f"(bounded to 20 s): {r.get('ok', '?'):,} reached the server, "
                          f"{r.get('failed', '?')} were closed or refused, {r.get('pending', '?')} "
                          f"were left waiting; fds then: host {ov['fds']['host']:,}, enclave "
                          f"{ov['fds']['enclave']:,}; "
                          + (f"all released {ov['release_secs']:.2f} s after closing"
                             if ov["release_secs"] is not None else "**not released in 30 s**")
                          + "; qproxy " + ("served a PING afterwards." if ov["serves_after"]
                                           else "**did not serve a PING afterwards**."))
            md.append("")
        md.append("## Every round\n")
        rh, rr = self.raw_rows()
        md.append(self.md_table(rh, rr, text_cols=1) + "\n")
        md.append(self.others_summary() + "\n")
        if self.startup:
            md.append("Startup, every start, ms: " + "; ".join(
                f"{k}: " + ", ".join("ERR" if x is None else f"{x * 1000:.2f}" for x in v)
                for k, v in self.startup.items()) + "\n")
        md.append("## Errors and qproxy's stderr\n")
        if self.errors:
            md.append(f"{len(self.errors)} measurement error(s):\n")
            md += [f"- {e}" for e in self.errors]
            md.append("")
        else:
            md.append("No measurement failed: every client finished, no failed request.\n")
        for name, nlines, kinds in stderr:
            if nlines:
                md.append(f"`{name}` wrote {nlines} line(s) to stderr (log level warn), by "
                          "kind (count, then one example):\n\n```")
                for c, k, ex in kinds[:12]:
                    md.append(f"{c:6d} x {k[:110]}")
                    md.append(f"         e.g. {ex[:220]}")
                md.append("```\n")
            else:
                md.append(f"`{name}` wrote nothing to stderr (log level warn).\n")
        if any("[iperf3 rule]" in k and "closed on error" in k
               for _, _, kinds in stderr for _, k, _ in kinds):
            md.append("The iperf3 lines are expected: at the end of every test iperf3 closes "
                      "its data connections with data still unread, which resets them; each "
                      "half logs that once per stream per test, at warn. The byte counts in "
                      "them match what iperf3 reports.\n")
        if self.notes:
            md.append("## Notes\n")
            md += [f"- {n}" for n in sorted(set(self.notes))]
            md.append("")
        md.append("## How each figure is taken\n")
        md.append(
            "- iperf3: `iperf3 -c 127.0.0.1 -p PORT -t T -J [-P 8]`, client -> server (into "
            "the enclave); the receiver's `sum_received` rate.\n"
            "- proxy CPU s per GB: utime+stime of the proxy processes from /proc/PID/stat "
            "just before and after each iperf3 test, divided by the bytes the receiver got. "
            "qproxy: both halves' own times (one process each). socat: for the two socat "
            "parents of the iperf3 path, utime+stime+cutime+cstime, read after waiting until "
            "each parent has no child left, so every forked child's time has been reaped "
            "into the parent's cutime/cstime. Clock tick 1/100 s.\n"
            "- redis: `redis-benchmark -t get,set -n N -c 50 --csv --precision 3` against "
            "`redis-server --save '' --appendonly no` in the enclave namespace; req/s, p50, "
            "p99 from its CSV.\n"
            "- proxy CPU s per 100k requests: the same readings around a redis-benchmark run "
            "(its n GETs and n SETs together) and a pgbench select-only run (its transactions: "
            "one SELECT each), per 100,000.\n"
            f"- pgbench: a throwaway cluster (initdb, run as {PG_USER}, fsync, "
            "synchronous_commit and full_page_writes off, shared_buffers 256MB, 127.0.0.1 only) "
            f"in the enclave namespace, `pgbench -i -s {PG_SCALE}`; then `pgbench -c "
            f"{PG_CLIENTS} -j 2 -M extended -T T -l [-S]`: tps from its output (without the "
            "connection time), p50 and p99 from its per-transaction log (`-l`).\n"
            "- ab: `ab -r -s 10 -t T -n N -c 50` (no keep-alive: one TCP connection per "
            "request; stops at N requests or T seconds) for a 134-byte file from nginx "
            "(1 worker, access log off) in the enclave namespace; `Requests per second`, "
            "and the 99% line of its connection times.\n"
            "- scale: `bench.py open` (root ns) opens the connections through qproxy, at most "
            "256 still waiting at a time, and counts one when the server's byte arrives; "
            "`bench.py hold` (enclave ns) accepts and keeps them. VmRSS from "
            "/proc/PID/status, fds from /proc/PID/fd, before and with the connections.\n"
            "- startup: from just before Popen (vfork+exec) to the first successful connect "
            "to the listening socket, tried in a loop without sleeping (each attempt is "
            "closed at once); median. For scale, spawning and reaping `/bin/true` takes "
            f"{getattr(self, 'spawn_ms', 0):.2f} ms here (median).\n"
            "- The bench and everything it starts (clients, servers, proxies: every path "
            "alike) run under a seccomp filter refusing socket(AF_VSOCK), which must never be "
            "opened here, with RLIMIT_NOFILE at its hard limit.\n")
        self.out.write_text("\n".join(md))


# ---------------------------------------------------------------------------
# Scale helpers.

def cmd_hold(port, seconds):
    _raise_nofile()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    ls.setblocking(False)
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    held = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for fd, _ in ep.poll(1.0):
            if fd == ls.fileno():
                for _ in range(256):
                    try:
                        c, _a = ls.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno in (errno.EMFILE, errno.ENFILE):
                            time.sleep(0.01)
                            break
                        raise
                    c.setblocking(False)
                    try:
                        c.send(b"x")
                    except OSError:
                        c.close()
                        continue
                    held[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
            else:
                # The client went away (EOF or reset): close our side too, so the
                # proxy's reverse pipe ends and it can free the connection.
                c = held.pop(fd, None)
                if c:
                    ep.unregister(fd)
                    c.close()


def cmd_open(port, n, seconds):
    _raise_nofile()
    ep = select.epoll()
    pending, done = {}, []
    failed = started = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    while len(done) + failed < n and time.monotonic() < deadline:
        while started < n and len(pending) < 256:
            s = socket.socket()
            s.setblocking(False)
            started += 1
            e = s.connect_ex(("127.0.0.1", port))
            if e not in (0, errno.EINPROGRESS):
                failed += 1
                s.close()
                continue
            pending[s.fileno()] = s
            ep.register(s.fileno(), select.EPOLLIN)
        for fd, _ in ep.poll(0.2):
            s = pending.pop(fd)
            ep.unregister(fd)
            try:
                b = s.recv(1)
            except OSError:
                b = b""
            if b == b"x":
                done.append(s)
            else:
                failed += 1
                s.close()
    print(json.dumps({"ok": len(done), "failed": failed, "pending": len(pending),
                      "seconds": time.monotonic() - t0}), flush=True)
    # Hold them until the bench closes our stdin, or for at most as long again.
    select.select([sys.stdin], [], [], seconds + 300)
    for s in done + list(pending.values()):
        s.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "hold":
        return cmd_hold(int(sys.argv[2]), float(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "open":
        return cmd_open(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    import argparse
    ap = argparse.ArgumentParser(description="qproxy side-by-side benchmark (see bench/README.md)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--binary-note", default="", help="where the binary comes from, for RESULTS")
    ap.add_argument("--commit", default="", help="the binary's commit, when it is not the "
                    "working tree's build")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to this long for the machine to be idle")
    ap.add_argument("--only", default="", help="comma-separated: startup,scale,iperf,redis,ab,"
                    "pgbench,egress,dns (for working on the bench; the report then has gaps)")
    args = ap.parse_args()
    if not args.netns.startswith("qpbench-"):
        sys.exit("bench: the namespace name must start with qpbench-")

    stopping = []

    def stop(signum, frame):
        # Once only: a second signal must not interrupt the cleanup the first started.
        if not stopping:
            stopping.append(signum)
            raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, stop)
    guard_self()
    b = Bench(args)
    stopped = None
    try:
        b.main()
    except SystemExit as e:
        stopped = e.code
    except SetupError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        for f in sorted(b.work.glob("*.log")):
            text = f.read_text(errors="replace").strip()
            if text:
                print(f"--- {f.name}:\n{text[-3000:]}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        b.cleanup()
    if stopped is not None:
        print(f"bench: stopped (status {stopped}); everything it started is stopped"
              + (f" and {b.ns} deleted" if b.ns_created else "") + "; no results written",
              file=sys.stderr)
        return stopped
    b.report()  # after the cleanup: by then every process of the bench has been reaped
    return 0


if __name__ == "__main__":
    sys.exit(main())
