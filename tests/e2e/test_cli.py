"""The command line: help, version, usage errors, option spellings, environment variables."""

import re
import socket

import pytest

from harness import free_tcp_port, recv_all, run


def qrun(binary, *args, env=None):
    return run([str(binary), *args], timeout=5, env=env)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(qproxy_bin, flag):
    r = qrun(qproxy_bin, flag)
    assert r.returncode == 0, r.stderr
    for word in ("host", "enclave", "check-config"):
        assert word in r.stdout, f"{flag} does not mention {word}:\n{r.stdout}"


@pytest.mark.parametrize("sub,options", [
    ("host", ["--config", "--vsock-dir", "--ipv4", "--ipv6", "--control-port"]),
    ("enclave", ["--config", "--vsock-dir", "--cid", "--parent-cid", "--control-port"]),
])
def test_subcommand_help(qproxy_bin, sub, options):
    r = qrun(qproxy_bin, sub, "--help")
    assert r.returncode == 0, r.stderr
    for opt in options:
        assert opt in r.stdout, f"`{sub} --help` does not mention {opt}:\n{r.stdout}"


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(qproxy_bin, flag):
    r = qrun(qproxy_bin, flag)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\b\d+\.\d+\.\d+\b", r.stdout), r.stdout


@pytest.mark.parametrize("args", [
    ["frobnicate"],                       # unknown subcommand
    [],                                   # no subcommand
    ["host", "--no-such-option", "4"],    # unknown option
    ["enclave", "--cid"],                 # option without its value
    ["host", "--vsock-dir", "VSOCK_DIR"],  # host without a CID (and no QPROXY_LISTEN_CID)
    ["host", "--control-port", "70000", "--vsock-dir", "VSOCK_DIR", "4"],  # out of range
], ids=["unknown-subcommand", "no-subcommand", "unknown-option", "missing-value",
        "host-without-cid", "control-port-range"])
def test_usage_errors_exit_2(qproxy_bin, vsock_dir, args):
    r = qrun(qproxy_bin, *[str(vsock_dir) if a == "VSOCK_DIR" else a for a in args])
    assert r.returncode == 2, f"exit status {r.returncode}, expected 2\nstderr: {r.stderr}"
    assert r.stderr.strip(), "a usage error should say what is wrong on stderr"


def echo_through(host_port):
    with socket.create_connection(("127.0.0.1", host_port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)


@pytest.mark.parametrize("style", ["equals", "separate"])
def test_option_spellings(qp, style):
    host_port = free_tcp_port()
    cfg = qp.config(inbound=[(host_port, 6000, 9000)])
    d = str(qp.vsock_dir)
    if style == "equals":
        host_args = ["host", f"--config={cfg}", f"--vsock-dir={d}", "--control-port=6000", "4"]
        enclave_args = ["enclave", f"--config={cfg}", f"--vsock-dir={d}", "--cid=4",
                        "--parent-cid=3", "--control-port=6000"]
    else:
        host_args = ["host", "--config", str(cfg), "--vsock-dir", d, "--control-port", "6000", "4"]
        enclave_args = ["enclave", "--config", str(cfg), "--vsock-dir", d, "--cid", "4",
                        "--parent-cid", "3", "--control-port", "6000"]
    qp.server("echo", 6000)
    qp.enclave(cfg, args=enclave_args)
    qp.host(cfg, args=host_args)
    assert echo_through(host_port) == b"ping"


def test_environment_variables(qp):
    # QPROXY_VSOCK_DIR instead of --vsock-dir, QPROXY_CID instead of --cid,
    # QPROXY_LISTEN_CID instead of the host's CID argument.
    host_port = free_tcp_port()
    cfg = qp.config(inbound=[(host_port, 6000, 9000)])
    d = str(qp.vsock_dir)
    qp.server("echo", 6000)
    qp.enclave(cfg, cid=7, args=["enclave", f"--config={cfg}"],
               env={"QPROXY_VSOCK_DIR": d, "QPROXY_CID": "7"})
    qp.host(cfg, args=["host", f"--config={cfg}"],
            env={"QPROXY_VSOCK_DIR": d, "QPROXY_LISTEN_CID": "7"})
    assert echo_through(host_port) == b"ping"
