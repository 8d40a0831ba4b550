"""`qproxy enclave ... -- COMMAND`: the enclave half runs the app. Its output reaches the
host's log line by line with levels (long lines cut and marked, bad UTF-8 escaped, the
last line without a newline too, lines written while the link was down later); signals
are passed on to it, its exit status is qproxy's, one that ignores SIGTERM is killed
after --stop-timeout; restart policies with their counts in `qproxy status`; the app
starts only after the half's listeners and hosts file; as PID 1 of a PID namespace it
reaps orphans and ends by "powering off", which there ends only the namespace."""

import os
import re
import signal
import socket

import pytest

import harness
from harness import free_tcp_port, wait_until

PYTHON = harness.PYTHON


def app_enclave(qp, cfg, command, opts=(), env=None, prefix=(), name="enclave"):
    """The enclave half running command (a list) as its app, with opts before the --."""
    argv = [*prefix, qp.binary, "enclave", f"--config={cfg}", "--vsock-dir", str(qp.vsock_dir),
            "--cid", "4", *opts, "--", *command]
    return qp.procs.start(name, argv, netns=qp.netns, env={"RUST_LOG": "info", **(env or {})})


def sh(script):
    return ["/bin/sh", "-c", script]


def host_with_rule(qp, extra=""):
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)], extra=extra)
    return cfg, qp.host(cfg)


def wait_log(p, pattern, what, timeout=10):
    return wait_until(lambda: re.search(pattern, p.stderr(), re.M), timeout, what)


def status(qp):
    r = harness.run([qp.binary, "status"], env={"QPROXY_STATUS_SOCKET": str(qp.status_socket())})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_output_lines_reach_the_host_with_levels(qp):
    cfg, host = host_with_rule(qp)
    script = ("echo 'hello from the app'; echo 'something failed' >&2; "
              "printf 'bad \\377\\376 bytes\\n'; "
              "head -c 1048576 /dev/zero | tr '\\0' x; echo; "
              "echo 'after the long one'; printf 'no newline at the end'")
    enclave = app_enclave(qp, cfg, sh(script))
    assert enclave.wait(20) == 0, enclave.stderr()
    log = host.stderr()
    # The enclave's own time and level, then [app]: stdout at info, stderr at warn.
    ts = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
    wait_log(host, ts + r"INFO  \[app\] hello from the app$", "stdout at info")
    log = host.stderr()
    assert re.search(ts + r"WARN  \[app\] something failed$", log, re.M), log
    assert re.search(r"INFO  \[app\] bad \\xff\\xfe bytes$", log, re.M), log
    # 1 MiB without a newline: its first 768 bytes, marked with the whole length.
    assert re.search(r"INFO  \[app\] x{768} \[line cut: 1048576 bytes\]$", log, re.M), \
        [l[:120] for l in log.splitlines() if "cut" in l]
    assert re.search(r"INFO  \[app\] after the long one$", log, re.M), log
    wait_log(host, r"INFO  \[app\] no newline at the end$", "the last line without a newline")
    wait_log(host, r"INFO  enclave app exited with status 0; 0 restarts$", "the exit on the host")
    # The same lines in the enclave half's own log.
    assert re.search(r"WARN  \[app\] something failed$", enclave.stderr(), re.M)
    # The app's lines come whatever the log level; the half's info lines do not.
    assert "[app] hello from the app" in enclave.stderr()


def test_app_lines_come_whatever_the_log_level(qp):
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    host = qp.host(cfg, env={"RUST_LOG": "error"})
    enclave = app_enclave(qp, cfg, sh("echo quiet please"), env={"RUST_LOG": "error"})
    assert enclave.wait(20) == 0
    # The app's lines, its start and its end are news at any level, on both halves.
    wait_log(host, r"INFO  \[app\] quiet please$", "the app's line from a half at error")
    wait_log(host, r"INFO  enclave app exited with status 0; 0 restarts$",
             "the app's end on a host half at error")
    log = enclave.stderr()
    assert re.search(r"INFO  app: started /bin/sh -c echo quiet please as pid \d+$", log, re.M), log
    assert re.search(r"INFO  app: pid \d+ exited with status 0, after \d+ ms$", log, re.M), log
    # The half's own info lines are still held back.
    assert "control: link to the host half up" not in log
    assert "control: link to the enclave half up" not in host.stderr()


def test_lines_written_while_the_link_is_down_arrive_later(qp):
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    enclave = app_enclave(qp, cfg, sh("for i in 1 2 3; do echo early $i; done; exec sleep 60"))
    wait_log(enclave, r"\[app\] early 3$", "the app's lines in the enclave's own log")
    host = qp.host(cfg)
    qp.wait_linked(host)
    for i in (1, 2, 3):
        wait_log(host, rf"INFO  \[app\] early {i}$", f"line {i}, written before the host came")
    # SIGTERM to the half goes to the app, which dies of it: 128 + 15.
    enclave.signal(signal.SIGTERM)
    assert enclave.wait(15) == 128 + signal.SIGTERM
    wait_log(host, r"WARN  enclave app exited on signal 15 \(Terminated\), status 143",
             "the signal's exit on the host")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 42), (signal.SIGINT, 43)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_passed_on_and_exit_status_kept(qp, sig, code):
    cfg, host = host_with_rule(qp)
    name = sig.name[3:]
    script = (f"trap 'echo got {name}; exit {code}' {name}; echo ready; "
              "while :; do sleep 0.1; done")
    enclave = app_enclave(qp, cfg, sh(script))
    wait_log(host, r"\[app\] ready$", "the app to start")
    enclave.signal(sig)
    assert enclave.wait(15) == code, enclave.stderr()
    wait_log(host, rf"INFO  \[app\] got {name}$", "the app's word that it got the signal")
    wait_log(host, rf"WARN  enclave app exited with status {code}; 0 restarts$",
             "the exit status on the host")


def test_app_ignoring_sigterm_is_killed_after_stop_timeout(qp):
    cfg, host = host_with_rule(qp)
    enclave = app_enclave(qp, cfg, sh("trap '' TERM; echo stubborn; while :; do sleep 0.1; done"),
                          opts=["--stop-timeout=1"])
    wait_log(host, r"\[app\] stubborn$", "the app to start")
    enclave.signal(signal.SIGTERM)
    assert enclave.wait(15) == 128 + signal.SIGKILL, enclave.stderr()
    log = enclave.stderr()
    assert re.search(r"app: passing signal 15 \(Terminated\) on to pid \d+ and its group; "
                     r"SIGKILL in 1000 ms", log), log
    assert re.search(r"WARN  app: pid \d+ still running 1000 ms after it was told to stop: "
                     r"SIGKILL", log), log
    wait_log(host, r"enclave app exited on signal 9 \(Killed\), status 137",
             "the kill on the host")


def test_exit_status_is_passed_on_and_no_restart_by_default(qp):
    cfg, host = host_with_rule(qp)
    enclave = app_enclave(qp, cfg, sh("echo once; exit 5"))
    assert enclave.wait(20) == 5
    wait_log(host, r"WARN  enclave app exited with status 5; 0 restarts$", "the exit on the host")
    assert host.stderr().count("[app] once") == 1
    out = status(qp)
    assert "enclave app: /bin/sh -c echo once; exit 5\n  exited, restarts 0, last exit status 5\n" \
        in out, out


def test_restart_on_failure_backs_off_and_counts(qp, tmp_path):
    cfg, host = host_with_rule(qp)
    runs = tmp_path / "runs"
    # Fails twice, then succeeds: the half then stops with status 0.
    script = f"echo run >> {runs}; n=$(wc -l < {runs}); echo run $n; [ $n -ge 3 ] || exit 1"
    enclave = app_enclave(qp, cfg, sh(script), opts=["--restart=on-failure"])
    assert enclave.wait(30) == 0, enclave.stderr()
    assert runs.read_text().count("run") == 3
    log = enclave.stderr()
    waits = [int(w) for w in re.findall(r"WARN  app: restart \d+ in (\d+) ms "
                                        r"\(--restart=on-failure\)", log)]
    assert len(waits) == 2, log
    # Jittered within [d/2, d] of a doubling d: 100..200 ms, then 200..400 ms.
    assert 100 <= waits[0] <= 200 and 200 <= waits[1] <= 400, waits
    for n in (1, 2, 3):
        wait_log(host, rf"INFO  \[app\] run {n}$", f"run {n}'s line on the host")
    wait_log(host, r"INFO  enclave app exited with status 0; 2 restarts$", "the last exit")
    assert len(re.findall(r"WARN  enclave app exited with status 1; \d restarts$", host.stderr(),
                          re.M)) == 2
    out = status(qp)
    assert "  exited, restarts 2, last exit status 0\n" in out, out


def test_restart_always_keeps_it_running_and_status_shows_it(qp, tmp_path):
    cfg, host = host_with_rule(qp)
    runs = tmp_path / "runs"
    # Exits 0 twice, then stays up: --restart=always restarts a success too.
    script = (f"echo run >> {runs}; n=$(wc -l < {runs}); echo run $n; "
              "[ $n -ge 3 ] && exec sleep 60; exit 0")
    enclave = app_enclave(qp, cfg, sh(script), opts=["--restart=always"])
    wait_log(host, r"INFO  \[app\] run 3$", "the third run")
    wait_until(lambda: "  running, pid" in status(qp), 10, "status to show the app running")
    out = status(qp)
    m = re.search(r"enclave app: /bin/sh -c .*\n  running, pid (\d+), uptime \d+ s, "
                  r"restarts 2, last exit status 0\n", out)
    assert m, out
    # The pid is the app's, seen from the enclave half: its child.
    kids = open(f"/proc/{enclave.pid}/task/{enclave.pid}/children").read().split()
    assert m.group(1) in kids, (m.group(1), kids)
    enclave.signal(signal.SIGTERM)
    assert enclave.wait(15) == 128 + signal.SIGTERM


def test_app_starts_after_its_listeners_and_hosts_file(qp, tmp_path):
    port = free_tcp_port()
    hosts = tmp_path / "hosts"
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)],
                    outbound=[("api.example.com", 9001, port)],
                    extra=f'[enclave]\nhosts_file = "{hosts}"\n')
    host = qp.host(cfg)
    # At its first instruction the app connects to the enclave half's own listener and
    # reads the hosts file: neither may be missing.
    code = (f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5).close(); "
            f"line = [l for l in open('{hosts}') if 'api.example.com' in l][0]; "
            "print('connected; hosts:', line.split()[0])")
    enclave = app_enclave(qp, cfg, [PYTHON, "-c", code])
    assert enclave.wait(20) == 0, enclave.stderr()
    wait_log(host, r"INFO  \[app\] connected; hosts: 127\.0\.0\.1$", "the app's success")


def test_command_that_cannot_run(qp):
    cfg, host = host_with_rule(qp)
    enclave = app_enclave(qp, cfg, ["/nonexistent/app", "--flag"])
    assert enclave.wait(20) == 127
    wait_log(host, r"WARN  \[app\] qproxy: cannot run /nonexistent/app: No such file or directory",
             "why on the host")


def test_usage_errors(qp):
    cfg = qp.config(inbound=[(free_tcp_port(), 6000, 9000)])
    base = [qp.binary, "enclave", f"--config={cfg}", "--vsock-dir", str(qp.vsock_dir),
            "--cid", "4"]
    for extra, want in [
        (["--"], "'--' must be followed by a COMMAND"),
        (["--restart=sometimes", "--", "true"], "invalid --restart 'sometimes' "
                                                "(no, on-failure, always)"),
        (["--stop-timeout=-1", "--", "true"], "invalid --stop-timeout '-1' (0..3600 seconds)"),
        (["--restart=always"], "--restart and --stop-timeout need an app: -- COMMAND"),
    ]:
        r = harness.run(base + extra)
        assert r.returncode == 2, (extra, r.stderr)
        assert want in r.stderr, (extra, r.stderr)


def ns_children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def proc_state(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_as_pid1_reaps_orphans_and_powers_off_the_namespace(qp):
    """reboot(2): in a PID namespace other than the initial one, RB_POWER_OFF terminates
    that namespace's init (the parent sees SIGINT), never the machine."""
    cfg, host = host_with_rule(qp)
    # Each subshell leaves a sleeper behind and exits: the sleepers are orphans, re-parented
    # to process 1 of the namespace, which is qproxy.
    script = ("for i in 1 2 3; do (sleep 1 & echo orphan $!); done; echo forked; "
              "while :; do sleep 0.1; done")
    enclave = app_enclave(qp, cfg, sh(script), env={"RUST_LOG": "debug"},
                          prefix=["unshare", "-fp", "--mount-proc", "--kill-child"])
    wait_log(host, r"INFO  \[app\] forked$", "the app to leave its orphans")
    # unshare forks qproxy, which is process 1 in there.
    init = wait_until(lambda: ns_children(enclave.pid), 5, "qproxy under unshare")[0]
    assert "as process 1" in enclave.stderr()
    # Orphans come to it, and go when they end: no zombie stays.
    wait_until(lambda: len(re.findall(r"DEBUG app: reaped pid \d+, an orphan", enclave.stderr()))
               == 3, 10, "the three orphans to be reaped")
    zombies = [c for c in ns_children(init) if proc_state(c) == "Z"]
    assert zombies == []
    assert [proc_state(c) for c in ns_children(init)] == ["S"]  # the app, sleeping
    os.kill(init, signal.SIGTERM)
    rc = enclave.wait(15)
    log = enclave.stderr()
    assert "qproxy: process 1 powering off (exit status 143)" in log, log
    # The namespace's init was ended by reboot(RB_POWER_OFF): SIGINT, as reboot(2) says;
    # unshare passes its child's death on as its own.
    assert rc in (-signal.SIGINT, 128 + signal.SIGINT), (rc, log)
    assert "power off:" not in log
    wait_log(host, r"enclave app exited on signal 15 \(Terminated\), status 143",
             "the app's end on the host, sent before the power off")


def test_clock_sample_over_the_link(qp):
    """sync_clock asks the host half for its time and judges the offset; here both halves
    read the same kernel clock, so the offset is within the round trip and nothing is
    stepped. The enclave half runs without CAP_SYS_TIME all the same, so that no bug can
    set this machine's clock; setting it is for the VM test."""
    cfg, host = host_with_rule(qp, extra="[enclave]\nsync_clock = true\n")
    enclave = app_enclave(qp, cfg, sh("exec sleep 60"), env={"RUST_LOG": "debug"},
                          prefix=["setpriv", "--bounding-set=-sys_time", "--"])
    m = wait_log(enclave, r"DEBUG clock: ([+-]\d+\.\d{3}) ms from the host's \(round trip "
                          r"(\d+\.\d{3}) ms\): left alone", "a clock sample judged")
    assert abs(float(m.group(1))) <= float(m.group(2)) / 2 + 0.001
    assert "cannot step the clock" not in enclave.stderr()
    assert "clock: stepped" not in enclave.stderr()


def test_as_pid1_a_bad_config_powers_off_too(qp):
    """Process 1 must never exit, whatever ends it: a refused config powers off as well
    (in a PID namespace, the parent sees SIGINT), after saying why."""
    bad = qp.config(extra="[enclave]\nsync_clock = maybe\n")
    p = qp.procs.start("enclave", ["unshare", "-fp", "--mount-proc", "--kill-child", qp.binary,
                                   "enclave", f"--config={bad}", "--vsock-dir",
                                   str(qp.vsock_dir), "--cid", "4", "--", "true"],
                       netns=qp.netns)
    rc = p.wait(15)
    log = p.stderr()
    assert "sync_clock: expected true or false, got maybe" in log, log
    assert "qproxy: process 1 powering off (exit status 1)" in log, log
    assert rc in (-signal.SIGINT, 128 + signal.SIGINT), (rc, log)

