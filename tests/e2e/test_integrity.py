"""Bytes are never lost, duplicated, reordered or corrupted: 256 MiB each way at once."""

import hashlib
import os
import socket
import threading
import time

import pytest

from harness import free_tcp_port

NBYTES = 256 << 20
CHUNK = 1 << 20


@pytest.mark.timeout(120)
@pytest.mark.parametrize("splice", ["1", "0"], ids=["splice", "read-write"])
def test_256_MiB_both_directions_at_once(qp, splice):
    host_port = free_tcp_port()
    cfg = qp.config(inbound=[(host_port, 6000, 9000)])
    # The server sends NBYTES while reading ours to EOF, then a trailer with both digests.
    qp.server("duplex", 6000, NBYTES)
    qp.enclave(cfg, env={"QPROXY_SPLICE": splice})
    qp.host(cfg, env={"QPROXY_SPLICE": splice})

    s = socket.create_connection(("127.0.0.1", host_port), timeout=10)
    s.settimeout(60)
    sent = hashlib.sha256()
    sender_error = []

    def sender():
        try:
            left = NBYTES
            while left:
                chunk = os.urandom(min(CHUNK, left))
                sent.update(chunk)
                s.sendall(chunk)
                left -= len(chunk)
            s.shutdown(socket.SHUT_WR)
        except BaseException as e:
            sender_error.append(e)

    t0 = time.monotonic()
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = hashlib.sha256()
    n = 0
    tail = bytearray()
    try:
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            if n < NBYTES:
                take = min(len(d), NBYTES - n)
                got.update(d[:take])
                n += take
                tail += d[take:]
            else:
                tail += d
    finally:
        t.join(60)
        s.close()
    elapsed = time.monotonic() - t0
    assert not sender_error, f"sending failed: {sender_error[0]!r}"
    assert n == NBYTES, f"received {n} of {NBYTES} bytes"
    assert len(tail) == 72, f"trailer is {len(tail)} bytes, expected 72"
    server_sent, server_got, server_n = tail[:32], tail[32:64], int.from_bytes(tail[64:], "big")
    assert server_n == NBYTES, f"server received {server_n} of {NBYTES} bytes"
    assert server_got == sent.digest(), "client->server bytes corrupted"
    assert server_sent == got.digest(), "server->client bytes corrupted"
    print(f"{2 * NBYTES >> 20} MiB relayed in {elapsed:.1f} s")
