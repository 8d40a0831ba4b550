"""Bad configs are refused, by every subcommand, with `FILE:LINE: message` for each error.
(The detailed cases are the golden tests in tests/config; these are a few, end to end.)"""

import re

import pytest

from harness import run

INBOUND = "[[inbound_connections]]\nhost_port = 5050\nenclave_port = 5050\nvsock_port = 9995\n"

# name: (config text, acceptable line numbers for each expected error)
BAD = {
    "port_out_of_range": (
        "[[inbound_connections]]\nhost_port = 70000\nenclave_port = 5050\nvsock_port = 9995\n",
        [{2}]),
    "port_not_a_number": (
        "[[inbound_connections]]\nhost_port = 5050\nenclave_port = \"web\"\nvsock_port = 9995\n",
        [{3}]),
    "garbage_line": (INBOUND + "this is not toml\n", [{5}]),
    "missing_vsock_port": (
        "[[inbound_connections]]\nhost_port = 5050\nenclave_port = 5050\n\n"
        "[[outbound_connections]]\nhostname = \"localhost\"\nvsock_port = 7777\ntcp_port = 443\n",
        [{1, 2, 3}]),
    "vsock_port_is_the_control_port": (
        "[[inbound_connections]]\nhost_port = 5050\nenclave_port = 5050\nvsock_port = 6666\n",
        [{4}]),
    "two_errors_both_reported": (
        "[[inbound_connections]]\nhost_port = -1\nenclave_port = 5050\nvsock_port = 9995\n\n"
        "[[inbound_connections]]\nhost_port = 5051\nenclave_port = 99999\nvsock_port = 9996\n",
        [{2}, {8}]),
}

GOOD_GUIDE = INBOUND + """
[[inbound_connections]]
host_port = 5443
enclave_port = 5443
vsock_port = 9994

[log_location]
host_log = "host.log"
enclave_log = "enclave.log"
log_level = "info"
host_log_dir = "/var/log/qproxy"
enclave_log_dir = "/var/log/qproxy"
"""

def command(binary, sub, path, vsock_dir):
    if sub == "check-config":
        return [str(binary), "check-config", str(path)]
    if sub == "host":
        return [str(binary), "host", f"--config={path}", "--vsock-dir", str(vsock_dir), "4"]
    return [str(binary), "enclave", f"--config={path}", "--vsock-dir", str(vsock_dir), "--cid", "4"]


@pytest.mark.parametrize("sub", ["check-config", "host", "enclave"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_refused(qproxy_bin, tmp_path, vsock_dir, case, sub):
    text, expected = BAD[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    r = run(command(qproxy_bin, sub, path, vsock_dir), timeout=5)
    assert r.returncode == 1, f"exit status {r.returncode}, expected 1\nstderr: {r.stderr}"
    lines = [int(m.group(1)) for m in re.finditer(rf"^{re.escape(str(path))}:(\d+): \S", r.stderr,
                                                   re.MULTILINE)]
    for allowed in expected:
        assert allowed & set(lines), \
            f"no {path}:LINE: message for line {sorted(allowed)}\nstderr: {r.stderr}"
    assert not list(vsock_dir.iterdir()), "a refused config must not open any socket"


@pytest.mark.parametrize("sub", ["check-config", "host", "enclave"])
def test_missing_config_file(qproxy_bin, tmp_path, vsock_dir, sub):
    path = tmp_path / "no-such.toml"
    r = run(command(qproxy_bin, sub, path, vsock_dir), timeout=5)
    assert r.returncode == 1, f"exit status {r.returncode}, expected 1\nstderr: {r.stderr}"
    assert str(path) in r.stderr


# (Not the guide's "Configuration File Reference": it has an outbound tcp_port and an
# inbound enclave_port both 443, so in the enclave the app and qproxy would both need
# 127.0.0.1:443; qproxy rightly refuses it.)
def test_check_config_accepts_the_guides_config(qproxy_bin, tmp_path):
    path = tmp_path / "config_qproxy.toml"
    path.write_text(GOOD_GUIDE)
    r = run([str(qproxy_bin), "check-config", str(path)], timeout=5)
    assert r.returncode == 0, r.stderr
