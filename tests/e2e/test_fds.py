"""Running out of file descriptors: the listener must not spin the CPU while it lasts,
and service must come back by itself when descriptors free up."""

import socket
import time

from harness import free_tcp_port, recv_all, wait_until

CLK_TCK = 100  # Linux reports utime/stime in USER_HZ, 100 on every architecture we run


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def test_fd_exhaustion_does_not_spin_and_recovers(qp, many_files):
    hp = free_tcp_port()
    cfg = qp.config(inbound=[(hp, 6000, 9000)])
    qp.server("echo", 6000)
    qp.enclave(cfg)
    # 64 fds at most, and qproxy cannot raise a hard limit: about 28 relayed connections.
    host = qp.host(cfg, nofile=(64, 64))
    clients = []
    try:
        for _ in range(100):  # the rest wait in the listen queue, ready to be accepted
            clients.append(socket.create_connection(("127.0.0.1", hp), timeout=5))
        wait_until(lambda: "pausing accepts" in host.stderr(), 5,
                   "the host half to run out of file descriptors")
        before = cpu_seconds(host.pid)
        time.sleep(2)
        used = cpu_seconds(host.pid) - before
        # A spinning poll loop would burn close to the whole 2 s.
        assert used < 0.5, f"host half used {used:.2f} s of CPU in 2 s while out of fds"
        assert host.alive()
    finally:
        for c in clients:
            c.close()
    # Once the clients are gone, a new one is served.
    def served():
        try:
            with socket.create_connection(("127.0.0.1", hp), timeout=2) as s:
                s.settimeout(2)
                s.sendall(b"back")
                s.shutdown(socket.SHUT_WR)
                return recv_all(s) == b"back"
        except OSError:
            return False
    wait_until(served, 10, "service to resume after descriptors freed up")
