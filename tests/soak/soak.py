#!/usr/bin/python3
"""Soak: SOAK_SECONDS (default 600) of mixed load through both kinds of rule, every
transfer checked byte for byte (sha256), then a report, and exit 1 on any failure.

  many short connections     connect, 1 B..8 KiB, half-close, the echo, close
  a few long bulk transfers  up to SOAK_BULK_MIB each way at once, with half-close, checked
                             against the server's sha256 of what it got and sent
  idle connections           opened, left idle 1..10 s, checked still open, some used, closed

Usage: run.sh [BINARY]   (default build/qproxy-static; run.sh cleans up whatever happens)
Environment: SOAK_SECONDS, SOAK_BULK_MIB (64), SOAK_SHORT_THREADS (4), SOAK_IDLE (16),
SOAK_RSS_MARGIN_KIB (1024), SOAK_MAX_CONNECTIONS (10,000,000), SOAK_WORKDIR (a temporary one).

Uses the end-to-end harness (tests/e2e/harness.py): processes under the AF_VSOCK guard,
vsock emulated with --vsock-dir, the enclave half in a network namespace of its own.
Pass: no failure, both halves alive, and at the end each half back to its idle fd count
exactly and within SOAK_RSS_MARGIN_KIB of its RSS after the warm-up.
"""

import hashlib
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness  # noqa: E402

MiB = 1 << 20
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
BULK_MIB = int(os.environ.get("SOAK_BULK_MIB", "64"))
SHORT_THREADS = int(os.environ.get("SOAK_SHORT_THREADS", "4"))
IDLE = int(os.environ.get("SOAK_IDLE", "16"))
RSS_MARGIN_KIB = int(os.environ.get("SOAK_RSS_MARGIN_KIB", "1024"))
MAX_CONNECTIONS = int(os.environ.get("SOAK_MAX_CONNECTIONS", "10000000"))
IO_TIMEOUT = 60  # per socket operation: a stuck transfer fails instead of hanging the soak
NETNS_PREFIX = "qpsoak"


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} soak: {msg}", flush=True)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = {"short": 0, "bulk": 0, "idle": 0}
        self.bytes = 0
        self.failures = []
        self.closed = False  # the soak is tearing down: what fails now is not news

    def ok(self, kind, nbytes):
        with self.lock:
            self.n[kind] += 1
            self.bytes += nbytes

    def fail(self, kind, why):
        with self.lock:
            if self.closed:
                return
            self.failures.append(f"{kind}: {why}")
        log(f"FAILURE {kind}: {why}")

    def connections(self):
        with self.lock:
            return sum(self.n.values())


class Soak:
    def __init__(self, binary):
        self.binary = Path(binary).resolve()
        self.stop = threading.Event()
        self.stats = Stats()
        self.netns = None
        self.procs = None
        self.vsock_dir = None
        self.work = None
        self.own_work = False
        self.peak = {}
        self.pidfile = None

    # ------------------------------------------------------------------ setup

    def setup(self):
        harness.cleanup_stale_netns(NETNS_PREFIX)
        w = os.environ.get("SOAK_WORKDIR")
        if w:
            self.work = Path(w)
            self.work.mkdir(parents=True, exist_ok=True)
        else:
            self.work = Path(tempfile.mkdtemp(prefix="qpsoak-"))
            self.own_work = True
        self.pidfile = self.work / "pids"
        # Short enough for a Unix socket path (108 bytes), and inside the work dir.
        self.vsock_dir = Path(tempfile.mkdtemp(prefix="v", dir=self.work))
        if len(str(self.vsock_dir)) > 80:
            self.vsock_dir = Path(tempfile.mkdtemp(prefix="qps", dir="/tmp"))
        self.netns = harness.Netns.create(NETNS_PREFIX)
        self.procs = harness.ProcSet(self.work)
        qp = harness.QProxy(self.binary, self.procs, self.netns, self.vsock_dir, self.work)
        self.qp = qp
        p = {k: harness.free_tcp_port() for k in ("in_echo", "in_bulk", "out_echo", "out_bulk")}
        self.ports = p
        nofile = (8192, 8192)
        self._track(qp.server("echo", 6000, nofile=nofile))
        self._track(qp.server("sized", 6001, nofile=nofile))
        self._track(qp.server("echo", p["out_echo"], in_netns=False, nofile=nofile))
        self._track(qp.server("sized", p["out_bulk"], in_netns=False, nofile=nofile))
        cfg = qp.config(inbound=[(p["in_echo"], 6000, 9000), (p["in_bulk"], 6001, 9001)],
                        outbound=[("127.0.0.1", 9100, p["out_echo"]),
                                  ("127.0.0.1", 9101, p["out_bulk"])])
        # warn: a line per connection at info would be millions of lines.
        self.enclave = self._track(qp.enclave(cfg, env={"RUST_LOG": "warn"}, nofile=(4096, 4096)))
        self.host = self._track(qp.host(cfg, env={"RUST_LOG": "warn"}, nofile=(4096, 4096)))
        self.halves = (self.host, self.enclave)
        harness.wait_until(lambda: "enclave half: connected" in self.status(), 15,
                           "the control link between the halves", watch=self.halves)
        log(f"{self.binary}: host pid {self.host.pid}, enclave pid {self.enclave.pid} "
            f"in {self.netns.name}; work dir {self.work}")

    def _track(self, p):
        # run.sh kills what is listed here if this process dies without cleaning up.
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def status(self):
        r = harness.run([str(self.binary), "status", "--status-socket",
                         str(self.qp.status_socket())])
        return r.stdout if r.returncode == 0 else ""

    def cleanup(self):
        self.stats.closed = True
        if self.procs:
            try:
                self.procs.stop_all()
            except Exception as e:
                log(f"stopping processes: {e}")
        if self.netns:
            self.netns.delete()
        if self.vsock_dir:
            shutil.rmtree(self.vsock_dir, ignore_errors=True)
        if self.own_work and self.work:
            if self.stats.failures and os.environ.get("SOAK_KEEP", "1") == "1":
                log(f"logs kept in {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)

    # ---------------------------------------------------------------- clients

    def connect(self, rule):
        if rule.startswith("in_"):
            return socket.create_connection(("127.0.0.1", self.ports[rule]), timeout=IO_TIMEOUT)
        s = self.netns.sockets(1)[0]
        try:
            s.settimeout(IO_TIMEOUT)
            s.connect(("127.0.0.1", self.ports[rule]))
        except BaseException:
            s.close()
            raise
        return s

    def budget_left(self):
        return not self.stop.is_set() and self.stats.connections() < MAX_CONNECTIONS

    def short_worker(self, seed):
        rnd = random.Random(seed)
        while self.budget_left():
            rule = rnd.choice(("in_echo", "out_echo"))
            payload = rnd.randbytes(rnd.randint(1, 8192))
            try:
                with self.connect(rule) as s:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    got = harness.recv_all(s, limit=len(payload) + 1)
                if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
                    self.stats.fail("short", f"{rule}: echo of {len(payload)} bytes came back "
                                    f"as {len(got)} different bytes")
                else:
                    self.stats.ok("short", 2 * len(payload))
            except (OSError, AssertionError) as e:
                self.stats.fail("short", f"{rule}: {e!r}")

    def bulk_once(self, rule, rnd):
        n_down = rnd.randint(1, BULK_MIB * MiB)
        n_up = rnd.randint(1, BULK_MIB * MiB)
        sent = hashlib.sha256()
        got = hashlib.sha256()
        err = []
        with self.connect(rule) as s:
            s.sendall(n_down.to_bytes(8, "big"))

            def sender():
                try:
                    left = n_up
                    r = random.Random(rnd.random())
                    while left:
                        chunk = r.randbytes(min(MiB, left))
                        sent.update(chunk)
                        s.sendall(chunk)
                        left -= len(chunk)
                    s.shutdown(socket.SHUT_WR)  # half-close: the download keeps flowing
                except OSError as e:
                    err.append(e)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            n = 0
            tail = bytearray()
            while True:
                d = s.recv(MiB)
                if not d:
                    break
                if n < n_down:
                    take = min(len(d), n_down - n)
                    got.update(d[:take])
                    n += take
                    tail += d[take:]
                else:
                    tail += d
                if len(tail) > 72:
                    break
            t.join(IO_TIMEOUT)
        if err:
            raise err[0]
        if t.is_alive():
            raise OSError("the upload did not finish")
        if n != n_down or len(tail) != 72:
            raise OSError(f"received {n} of {n_down} bytes and a {len(tail)}-byte trailer")
        srv_sent, srv_got, srv_n = tail[:32], tail[32:64], int.from_bytes(tail[64:], "big")
        if srv_n != n_up or srv_got != sent.digest():
            raise OSError(f"upload corrupted: server got {srv_n} of {n_up} bytes, "
                          f"sha256 {'matches' if srv_got == sent.digest() else 'differs'}")
        if srv_sent != got.digest():
            raise OSError(f"download of {n_down} bytes corrupted (sha256 differs)")
        return n_up + n_down

    def bulk_worker(self, rule, seed):
        rnd = random.Random(seed)
        while self.budget_left():
            try:
                self.stats.ok("bulk", self.bulk_once(rule, rnd))
            except (OSError, AssertionError) as e:
                self.stats.fail("bulk", f"{rule}: {e!r}")

    def idle_worker(self, seed):
        rnd = random.Random(seed)
        while self.budget_left():
            held = []
            try:
                for _ in range(IDLE):
                    rule = rnd.choice(("in_echo", "out_echo"))
                    held.append((rule, self.connect(rule)))
                # Idle for a while (cut short when the soak ends).
                self.stop.wait(rnd.uniform(1, 10))
                for i, (rule, s) in enumerate(held):
                    s.setblocking(False)
                    try:
                        d = s.recv(1)
                        self.stats.fail("idle", f"{rule}: {'EOF' if not d else 'data'} "
                                        "on an idle connection")
                        continue
                    except BlockingIOError:
                        pass
                    s.settimeout(IO_TIMEOUT)
                    if i % 2:  # half of them speak after their idle spell
                        msg = rnd.randbytes(rnd.randint(1, 512))
                        s.sendall(msg)
                        s.shutdown(socket.SHUT_WR)
                        back = harness.recv_all(s, limit=len(msg) + 1)
                        if back != msg:
                            self.stats.fail("idle", f"{rule}: wrong echo after idling")
                            continue
                        self.stats.ok("idle", 2 * len(msg))
                    else:
                        self.stats.ok("idle", 0)
            except (OSError, AssertionError) as e:
                self.stats.fail("idle", repr(e))
            finally:
                for _, s in held:
                    s.close()

    def sampler(self):
        while not self.stop.wait(0.5):
            self.sample()

    def sample(self):
        for p in self.halves:
            r, f = rss_kib(p.pid), p.nfds()
            pk = self.peak.setdefault(p.name, [0, 0])
            pk[0], pk[1] = max(pk[0], r), max(pk[1], f)

    # -------------------------------------------------------------------- run

    def warm_up(self):
        rnd = random.Random(1)
        for i in range(200):
            rule = ("in_echo", "out_echo")[i % 2]
            with self.connect(rule) as s:
                s.sendall(b"warm-up %d" % i)
                s.shutdown(socket.SHUT_WR)
                assert harness.recv_all(s) == b"warm-up %d" % i
        for rule in ("in_bulk", "out_bulk"):
            self.bulk_once(rule, rnd)

    def wait_idle_fds(self, timeout):
        try:
            for p in self.halves:
                harness.wait_until(lambda: p.nfds() == self.fds0[p.name], timeout,
                                   f"{p.name} back to {self.fds0[p.name]} fds")
            return True
        except harness.WaitTimeout:
            return False

    def run(self):
        self.fds0 = {p.name: p.nfds() for p in self.halves}  # linked, no connection
        self.warm_up()
        if not self.wait_idle_fds(10):
            raise SystemExit(f"soak: fds not back to idle after the warm-up: "
                             f"{ {p.name: p.nfds() for p in self.halves} } vs {self.fds0}")
        self.rss0 = {p.name: rss_kib(p.pid) for p in self.halves}
        log(f"baseline: fds {self.fds0}, RSS KiB {self.rss0}; running {SECONDS:.0f} s")
        threads = [threading.Thread(target=self.short_worker, args=(100 + i,), daemon=True)
                   for i in range(SHORT_THREADS)]
        threads += [threading.Thread(target=self.bulk_worker, args=(rule, 200 + i), daemon=True)
                    for i, rule in enumerate(("in_bulk", "out_bulk", "in_bulk", "out_bulk"))]
        threads.append(threading.Thread(target=self.idle_worker, args=(300,), daemon=True))
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        for t in threads:
            t.start()
        next_report = t0 + 60
        while time.monotonic() - t0 < SECONDS and self.stats.connections() < MAX_CONNECTIONS:
            time.sleep(min(1.0, max(0.0, SECONDS - (time.monotonic() - t0))))
            for p in self.halves:
                if not p.alive():
                    self.stats.fail("process", f"{p.name} exited with status {p.returncode}")
                    self.stop.set()
            if self.stop.is_set():
                break
            if time.monotonic() >= next_report:
                next_report += 60
                log(f"{time.monotonic() - t0:.0f} s: {self.stats.n}, "
                    f"{self.stats.bytes / MiB:.0f} MiB, {len(self.stats.failures)} failures, "
                    f"peak RSS/fds {self.peak}")
        self.stop.set()
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(2 * IO_TIMEOUT + 15)
            if t.is_alive():
                self.stats.fail("soak", f"{t.name} did not finish")
        sampler.join(5)
        self.sample()
        return elapsed

    def report(self, elapsed):
        alive = all(p.alive() for p in self.halves)
        fds_back = alive and self.wait_idle_fds(10)
        rss_back = True
        rss_now = {}
        for p in self.halves:
            limit = self.rss0[p.name] + RSS_MARGIN_KIB
            try:
                harness.wait_until(lambda: rss_kib(p.pid) <= limit, 5, "")
            except harness.WaitTimeout:
                rss_back = False
            rss_now[p.name] = rss_kib(p.pid)
        text = self.status()
        bad_rows = [line for line in text.splitlines()
                    if re.match(r"(inbound|outbound) \d+\s+(host|enclave)\s+\d+\s+\d+\s+[1-9]", line)]
        warnings = [line for p in self.halves for line in p.stderr().splitlines()
                    if " WARN " in line or " ERROR " in line]
        s = self.stats
        print()
        print(f"qproxy soak: {self.binary}, {elapsed:.0f} s")
        print(f"  connections   {sum(s.n.values())} (short {s.n['short']}, bulk {s.n['bulk']}, "
              f"idle {s.n['idle']})")
        print(f"  bytes         {s.bytes} ({s.bytes / MiB:.0f} MiB, each one checked)")
        print(f"  failures      {len(s.failures)}")
        for f in s.failures[:10]:
            print(f"                  {f}")
        for p in self.halves:
            pk = self.peak.get(p.name, [0, 0])
            print(f"  {p.name:<8}      peak RSS {pk[0]} KiB, peak fds {pk[1]}; baseline RSS "
                  f"{self.rss0[p.name]} KiB, fds {self.fds0[p.name]}; now RSS "
                  f"{rss_now[p.name]} KiB, fds {p.nfds()}")
        print(f"  fds back to baseline    {'yes' if fds_back else 'NO'}")
        print(f"  RSS back to baseline    {'yes' if rss_back else 'NO'} (within {RSS_MARGIN_KIB} KiB)")
        print(f"  halves alive            {'yes' if alive else 'NO'}")
        print(f"  status failure counters {'all 0' if not bad_rows else 'NOT 0: ' + '; '.join(bad_rows)}")
        print(f"  warnings in the logs    {len(warnings)}")
        for w in warnings[:10]:
            print(f"                  {w}")
        ok = (not s.failures and alive and fds_back and rss_back and not bad_rows
              and not warnings and text != "")
        print(f"  result                  {'PASS' if ok else 'FAIL'}")
        return ok


def main(argv):
    if os.geteuid() != 0:
        print("soak: needs root (network namespaces)", file=sys.stderr)
        return 2
    binary = argv[1] if len(argv) > 1 else str(REPO / "build" / "qproxy-static")
    if not os.access(binary, os.X_OK):
        print(f"soak: {binary}: not an executable (make static first)", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise SystemExit(f"soak: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    soak = Soak(binary)
    try:
        soak.setup()
        elapsed = soak.run()
        ok = soak.report(elapsed)
        return 0 if ok else 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        soak.stop.set()
        soak.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
