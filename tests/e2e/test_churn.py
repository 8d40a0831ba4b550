"""100,000 short connections through an inbound rule (connect, a few bytes, their echo,
close), every one of which must succeed, and afterwards each half holds what it held
before: the same fds exactly, and its RSS within 1 MiB.

Slow-ish: 45 to 70 s for 100,000 on a busy 2-core machine, so in `make test-e2e` it runs
against the static binary only (the one that goes into the enclave; the dynamic one is
the same code): QPROXY_CHURN_ALL=1 runs it against every binary under test. Under ASan
and UBSan (`make test-e2e-asan`) it runs the same 100,000 (the client, not qproxy, sets
the pace: about 1,500/s either way) with the same checks but RSS: ASan's quarantine
keeps freed memory on purpose (up to 256 MiB), so there the memory check is
LeakSanitizer's at exit, which fails the test on any leak (conftest.py).
Bounded: it stops at the count or after 300 s, a deadline against a hang rather than a
threshold (it fails, saying how far it got, if the count is not reached by then).
"""

import os
import re
import selectors
import socket
import time

import pytest

import harness
from harness import free_tcp_port, rss_kib, sanitized, wait_until

TOTAL = 100_000
MAX_SECONDS = 300
WARMUP = 1000
CONCURRENCY = 8  # enough to keep both halves busy; more only adds TIME_WAIT churn
RSS_MARGIN_KIB = 1024


def churn(addr, total, concurrency, max_seconds):
    """Up to total connections, concurrency at a time, each: connect, send 16 bytes, read
    their echo, close. Returns (done, failed, seconds, first errors)."""
    sel = selectors.DefaultSelector()
    started = done = failed = 0
    errors = []
    t0 = time.monotonic()
    deadline = t0 + max_seconds

    def fail(s, why):
        nonlocal failed
        sel.unregister(s)
        s.close()
        failed += 1
        if len(errors) < 5:
            errors.append(why)

    try:
        while done + failed < started or (started < total and time.monotonic() < deadline):
            while (started < total and len(sel.get_map()) < concurrency
                   and time.monotonic() < deadline):
                started += 1
                s = socket.socket()
                s.setblocking(False)
                err = s.connect_ex(addr)
                if err not in (0, 115):  # EINPROGRESS
                    s.close()
                    failed += 1
                    if len(errors) < 5:
                        errors.append(f"connect: {os.strerror(err)}")
                    continue
                sel.register(s, selectors.EVENT_WRITE, [b"%015d\n" % started, b""])
            if not sel.get_map():
                break
            events = sel.select(5)
            if not events:  # 5 s without any progress: everything in flight is stuck
                for key in list(sel.get_map().values()):
                    fail(key.fileobj, "no progress for 5 s")
                continue
            for key, _ in events:
                s, st = key.fileobj, key.data
                try:
                    if key.events == selectors.EVENT_WRITE:
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, os.strerror(err))
                        s.send(st[0])  # 16 bytes always fit an empty socket buffer
                        sel.modify(s, selectors.EVENT_READ, st)
                        continue
                    d = s.recv(64)
                    if not d:
                        raise OSError("EOF before the echo")
                    st[1] += d
                    if len(st[1]) >= len(st[0]):
                        if st[1] != st[0]:
                            raise OSError(f"echo {st[1]!r} for {st[0]!r}")
                        sel.unregister(s)
                        s.close()
                        done += 1
                except OSError as e:
                    fail(s, repr(e))
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return done, failed, time.monotonic() - t0, errors


def status(qp):
    r = harness.run([qp.binary, "status", "--status-socket", str(qp.status_socket())])
    return r.stdout if r.returncode == 0 else ""


def status_row(text, port, half):
    """(open, total, failed) of a half's row for inbound rule port."""
    m = re.search(r"^inbound %d\s+%s\s+(\d+)\s+(\d+)\s+(\d+)\s" % (port, half), text, re.M)
    return tuple(map(int, m.groups())) if m else None


@pytest.fixture
def not_the_dev_build(qproxy_bin):
    if qproxy_bin.name == "qproxy" and os.environ.get("QPROXY_CHURN_ALL") != "1":
        pytest.skip("slow: the dev build is the static binary's code; QPROXY_CHURN_ALL=1 runs it")


@pytest.mark.timeout(MAX_SECONDS + 90)
def test_100k_short_connections_leave_nothing_behind(not_the_dev_build, qp, many_files):
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    qp.server("echo", 6000, nofile=(4096, 4096))
    # warn, not info: 100,000 connections would log 400,000 lines.
    enclave = qp.enclave(cfg, env={"RUST_LOG": "warn"})
    host = qp.host(cfg, env={"RUST_LOG": "warn"})
    halves = (host, enclave)
    wait_until(lambda: "enclave half: connected" in status(qp), 10,
               "the control link between the halves", watch=halves)
    fds0 = {p.name: p.nfds() for p in halves}  # linked, no connection: the idle count
    addr = ("127.0.0.1", hp)

    def settle(what):
        for p in halves:
            wait_until(lambda: p.nfds() == fds0[p.name], 5,
                       f"{p.name} back to {fds0[p.name]} fds {what} (has {p.nfds()})",
                       watch=halves)

    # Warm-up: buffer pools and allocator arenas exist from here on.
    done, failed, _, errors = churn(addr, WARMUP, CONCURRENCY, 30)
    assert (done, failed) == (WARMUP, 0), f"warm-up: {done} done, {failed} failed: {errors}"
    settle("after the warm-up")
    rss0 = {p.name: rss_kib(p.pid) for p in halves}

    done, failed, secs, errors = churn(addr, TOTAL, CONCURRENCY, MAX_SECONDS)
    print(f"{done} connections in {secs:.1f} s ({done / secs:.0f}/s), {failed} failed; "
          f"RSS KiB before {rss0}, after {({p.name: rss_kib(p.pid) for p in halves})}")
    assert failed == 0, f"{failed} of {done + failed} connections failed, first: {errors}"
    assert done == TOTAL, f"only {done} of {TOTAL} connections within the {MAX_SECONDS} s deadline"

    settle(f"after {done} connections")
    for p in halves:
        assert p.alive(), f"{p.name} died"
        if sanitized(qp.binary):
            continue  # LeakSanitizer checks at exit instead
        # The pools drain once no connection is left; allow a moment for the last ones.
        wait_until(lambda: rss_kib(p.pid) <= rss0[p.name] + RSS_MARGIN_KIB, 2,
                   f"{p.name} RSS back within {RSS_MARGIN_KIB} KiB of {rss0[p.name]} KiB "
                   f"(has {rss_kib(p.pid)} KiB)")
    # Both halves counted every connection, none open and none failed.
    want = WARMUP + done
    text = wait_until(lambda: (lambda t: t if status_row(t, hp, "host") == (0, want, 0) and
                               status_row(t, hp, "enclave") == (0, want, 0) else None)(status(qp)),
                      5, f"status to show {want} connections, none open or failed, in both halves")
    for p in halves:
        assert " WARN " not in p.stderr() and " ERROR " not in p.stderr(), p.stderr()[-2000:]
    assert "enclave half: connected" in text
