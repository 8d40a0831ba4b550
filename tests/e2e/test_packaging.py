"""What users copy: the static binary, the Dockerfiles and the examples.

The Dockerfiles are checked statically here: every COPY source exists, and their commands
are the ones the Makefile, the dependency script and the examples use (make test-image
builds them for real with podman). The static binary is checked for what an enclave with
no libc needs.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import harness

REPO = harness.REPO
STATIC = REPO / "build" / "qproxy-static"


def dockerfile(name):
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPO / name).read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copies(name):
    """(sources, dest) of each COPY that takes files from the build context."""
    for word, rest in dockerfile(name):
        if word == "COPY" and "--from" not in rest:
            args = shlex.split(rest)
            yield args[:-1], args[-1]


def test_build_dockerfile_runs_make_static_for_its_arch_argument():
    steps = dockerfile("Dockerfile.build")
    # ARCH defaults to x86_64 before the first FROM, and each stage takes it in.
    assert steps[0] == ("ARG", "ARCH=x86_64")
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    for i in froms:
        assert ("ARG", "ARCH") in steps[i + 1:i + 3], f"stage {steps[i][1]} lacks ARG ARCH"
    runs = [rest for word, rest in steps if word == "RUN"]
    assert "make static ARCH=$ARCH" in runs, "Dockerfile.build must run the same `make static` as CI"
    # Its packages are install-deps.sh's static-ARCH profile, not a list of its own.
    assert any(r.startswith("scripts/install-deps.sh static-$ARCH ") for r in runs)
    assert not any("apt-get install" in r for r in runs)
    script = (REPO / "scripts/install-deps.sh").read_text()
    for arch in ("x86_64", "aarch64"):  # as a cross build; natively it is the build profile
        assert re.search(rf"^\s*{arch}\) echo make ", script, re.M), \
            f"install-deps.sh's static-{arch} profile lacks make, which the container has not"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^STATIC\s*= build/\$\(ARCH\)/qproxy-static$", makefile, re.M)
    assert re.search(r"^static: \$\(STATIC\)", makefile, re.M)
    assert steps[-1] == ("COPY", "--from=build /src/build/$ARCH/qproxy-static /qproxy")


def test_build_context_leaves_out_build_output():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "build" in ignored and ".git" in ignored


@pytest.mark.parametrize("name", ["Dockerfile.build", "Dockerfile.enclave"])
def test_every_copy_source_exists(name):
    for sources, _ in copies(name):
        for src in sources:
            path = REPO / src
            if src in ("./qproxy", "qproxy"):
                # The user's copy of the static binary: the Dockerfile says how to make it.
                assert "cp build/qproxy-static qproxy" in (REPO / name).read_text()
                continue
            assert path.exists(), f"{name}: COPY source {src} does not exist"


def test_enclave_image_runs_the_example_start_script():
    dests = {dest for _, dest in copies("Dockerfile.enclave")}
    assert "/root/qproxy" in dests
    cmd = [rest for word, rest in dockerfile("Dockerfile.enclave") if word == "CMD"][-1]
    assert '"/root/start.sh"' in cmd and "/root/start.sh" in dests
    start = (REPO / "examples/quickstart/start.sh").read_text()
    # The guide's command line, unchanged, against files the image holds.
    assert "/root/qproxy enclave --config=/root/config_qproxy.toml &" in start
    assert "/root/config_qproxy.toml" in dests and "/root/app.sh" in dests
    for script in ("examples/quickstart/start.sh", "examples/quickstart/app.sh",
                   "examples/outbound/start.sh", "examples/egress/start.sh"):
        assert os.access(REPO / script, os.X_OK), f"{script} is not executable"


def test_systemd_unit_runs_the_host_half():
    unit = (REPO / "examples/systemd/qproxy-host.service").read_text()
    line = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    assert line[1:3] == ["host", "--config=/etc/qproxy/config_qproxy.toml"]
    assert re.search(r"^Restart=on-failure$", unit, re.M)
    assert re.search(r"^After=.*qt-enclave\.service", unit, re.M)


@pytest.mark.parametrize("config", sorted(str(p.relative_to(REPO))
                                          for p in REPO.glob("examples/**/*.toml")))
def test_example_configs_pass_check_config(config):
    r = harness.run([str(STATIC), "check-config", str(REPO / config)])
    assert r.returncode == 0, r.stderr


# Every CPU an enclave runs on: x86_64, and aarch64 (Graviton, Kunpeng).
STATIC_BY_ARCH = {"x86_64": ("X86-64", REPO / "build" / "x86_64" / "qproxy-static"),
                  "aarch64": ("AArch64", REPO / "build" / "aarch64" / "qproxy-static")}
# What the coming features (egress, DNS, supervisor, metrics) may grow each binary to.
SIZE_LIMIT = 256 << 10


@pytest.mark.parametrize("arch", sorted(STATIC_BY_ARCH))
def test_static_binary_needs_nothing(arch):
    machine, path = STATIC_BY_ARCH[arch]
    if not path.exists():
        pytest.fail(f"{path} is missing: make static ARCH={arch}")
    elf = subprocess.run(["readelf", "-h", "-d", "-l", "-S", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert re.search(rf"Machine:\s+.*{machine}", elf), f"{path} is not an {arch} binary"
    assert "NEEDED" not in elf
    assert "INTERP" not in elf, "the static binary asks for a program interpreter"
    assert ".symtab" not in elf, "the static binary is not stripped"
    size = path.stat().st_size
    print(f"{arch} qproxy-static: {size} bytes ({size / 1024:.1f} KiB), "
          f"limit {SIZE_LIMIT >> 10} KiB")
    assert size <= SIZE_LIMIT, \
        f"{arch} qproxy-static is {size} bytes ({size / 1024:.1f} KiB), over {SIZE_LIMIT >> 10} KiB"


def test_static_binary_runs_in_an_empty_root(netns):
    """A root holding only the binary and its config: no libc, no /etc, no /dev."""
    root = Path(tempfile.mkdtemp(prefix="qproot."))
    try:
        shutil.copy(STATIC, root / "qproxy")
        (root / "c.toml").write_text("[[inbound_connections]]\nhost_port = 5050\n"
                                     "enclave_port = 5050\nvsock_port = 9000\n")
        (root / "v").mkdir()
        r = harness.run(["chroot", str(root), "/qproxy", "check-config", "/c.toml"])
        assert r.returncode == 0, r.stderr
        assert "vsock_port = 9000" in r.stdout
        # The enclave half, in a namespace of its own, listening on its emulated vsock port.
        p = subprocess.Popen(netns.exec_argv(["chroot", str(root), "/qproxy", "enclave",
                                              "--config", "/c.toml", "--vsock-dir", "/v",
                                              "--cid", "4"]),
                             stderr=subprocess.PIPE, preexec_fn=harness.VSOCK_GUARD.apply)
        try:
            harness.wait_until(lambda: (root / "v" / "4.9000").is_socket() or p.poll() is not None,
                               10, "the enclave half to listen in the empty root")
            assert p.poll() is None, p.stderr.read().decode()
            p.send_signal(signal.SIGTERM)
            assert p.wait(5) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        shutil.rmtree(root)
