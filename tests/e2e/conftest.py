"""Fixtures for qproxy's end-to-end tests.

Each test gets: a fresh network namespace standing in for the enclave (loopback only),
a short temporary vsock directory (qproxy --vsock-dir: vsock endpoint (cid, port) is the
Unix socket DIR/<cid>.<port>), and a QProxy helper that starts the host half in the root
namespace and the enclave half in the test's namespace. Every test runs once per binary:
build/qproxy and build/qproxy-static (`make test-e2e` builds both first).

Set QPROXY_E2E_BINARIES=path1:path2 to run the suite against other binaries; another CPU's
binary (build/aarch64/qproxy-static) runs under qemu-user (`make test-e2e-aarch64`).

Everything started is killed at teardown, the namespace and directories removed, even
when the test fails; on failure every process's stderr is attached to the report.
"""

import os
import platform
import resource
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

import harness

DEFAULT_BINARIES = [harness.REPO / "build" / "qproxy", harness.REPO / "build" / "qproxy-static"]
DEFAULT_TIMEOUT = 60


# ELF e_machine of the CPUs we build for, and the qemu-user that runs each elsewhere.
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def elf_arch(path):
    """The CPU an ELF binary is for ("x86_64", "aarch64"), or None for anything else."""
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"))


def _runnable(path):
    """path itself, or for another CPU's binary a wrapper that runs it under qemu-user:
    the tests then drive the real aarch64 code, syscalls and all, on this machine."""
    arch = elf_arch(path) if path.exists() else None
    if arch is None or arch == platform.machine():
        return path
    qemu = shutil.which(f"qemu-{arch}-static")
    if qemu is None:
        raise pytest.UsageError(f"{path} is an {arch} binary: install qemu-user-static")
    wrapper = path.with_name(f"{path.name}.{arch}-qemu-user")
    wrapper.write_text(f"#!/bin/sh\nexec {qemu} {path} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def _binaries():
    env = os.environ.get("QPROXY_E2E_BINARIES")
    if env:
        return [_runnable(Path(p).resolve()) for p in env.split(":") if p]
    return DEFAULT_BINARIES


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): fail the test after this long "
                            f"(default {DEFAULT_TIMEOUT} s)")


def pytest_sessionstart(session):
    if os.geteuid() != 0:
        raise pytest.UsageError("the e2e tests need root (network namespaces)")
    harness.cleanup_stale_netns()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    procs = getattr(item, "_qproxy_procs", None)
    if rep.failed and procs is not None:
        for p in procs.all:
            status = "running" if p.alive() else f"exit status {p.returncode}"
            text = p.stderr()
            if len(text) > 20000:
                text = "[...]\n" + text[-20000:]
            rep.sections.append((f"{p.name} stderr ({status}): {' '.join(p.argv)}", text))


@pytest.fixture(autouse=True)
def _deadline(request):
    """A hard limit on each test, so that no bug can hang the suite."""
    m = request.node.get_closest_marker("timeout")
    limit = int(m.args[0]) if m else DEFAULT_TIMEOUT

    def expired(signum, frame):
        raise TimeoutError(f"test exceeded its {limit} s limit")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(params=_binaries(), ids=lambda p: p.name)
def qproxy_bin(request):
    path = request.param
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build it first (make && make static)")
    return path


@pytest.fixture
def netns():
    ns = harness.Netns.create()
    try:
        yield ns
    finally:
        ns.delete()


@pytest.fixture
def vsock_dir():
    # Short, because a Unix socket path must fit in 108 bytes.
    d = tempfile.mkdtemp(prefix="qpv", dir="/tmp")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs(request, tmp_path, netns):
    # Depends on netns so that the processes stop before their namespace goes.
    ps = harness.ProcSet(tmp_path)
    request.node._qproxy_procs = ps
    try:
        yield ps
    finally:
        signal.alarm(0)  # the test is over; its deadline must not cut the cleanup short
        ps.stop_all()
    # Under the sanitized build (make test-e2e-asan) any report fails the test, even one
    # from a process whose exit status the test did not look at.
    for p in ps.all:
        text = p.stderr()
        if "ERROR: AddressSanitizer" in text or "ERROR: LeakSanitizer" in text or \
                "runtime error:" in text:
            pytest.fail(f"{p.name}: sanitizer report:\n{text[-4000:]}")


@pytest.fixture
def qp(qproxy_bin, procs, netns, vsock_dir, tmp_path):
    return harness.QProxy(qproxy_bin, procs, netns, vsock_dir, tmp_path)


@pytest.fixture
def many_files():
    """Raise this process's open-file limit for tests that hold many connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(16384, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        yield want
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
