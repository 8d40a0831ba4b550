#!/usr/bin/python3
"""Small TCP servers for the end-to-end tests, run as subprocesses (often inside the
enclave's network namespace: `ip netns exec NS /usr/bin/python3 servers.py echo 127.0.0.1 5050`).

Modes:
  hello HOST PORT              HTTP/1.1 200 "Hello world!" to every request (the guide's app).
  echo HOST PORT               echoes bytes back; on the client's EOF, flushes and shuts its
                               write side (so half-close is echoed too). One thread, any
                               number of connections.
  duplex HOST PORT NBYTES      sends NBYTES random bytes while reading the client's bytes until
                               EOF, then sends a 72-byte trailer: sha256(sent) sha256(received)
                               len(received) as 8 bytes big-endian, and closes.
  halfclose HOST PORT [DELAY]  reads until EOF, waits DELAY seconds (default 0), then answers
                               "received N bytes sha256 HEX\\n" and closes.
  shutfirst HOST PORT          sends "hello\n" and shuts its write side at once, then reads
                               until EOF and prints "received N bytes sha256 HEX" on stdout.
  accept-only HOST PORT        accepts connections and never reads nor closes them.
  source HOST PORT NBYTES      sends NBYTES of PATTERN (byte at offset i is i % 256), never
                               reading; prints "sent N" on stdout at each MiB and at the end,
                               then shuts its write side and reads until EOF.
  resetmid HOST PORT NBYTES TRIGGER
                               reads one byte from the client, sends NBYTES of PATTERN, then
                               resets the connection (SO_LINGER 0 close) without waiting for
                               the client to read: at once if the byte is "n", or (for "w")
                               once the file TRIGGER exists (at most 60 s), which it deletes.
                               Never reads more. Prints "reset T" with T its time.monotonic()
                               just after the close.
  stall HOST PORT TRIGGER N    reads N bytes, then neither reads nor writes until the file
                               TRIGGER exists (at most 300 s); then reads until EOF and answers
                               "received N bytes sha256 HEX\n" (all bytes, the first N too).
  whoami HOST PORT NAME        reads until EOF, answers "NAME received N bytes sha256 HEX\n"
                               and closes: tells a client which server it reached.
  sized HOST PORT              duplex with the size chosen by the client: reads an 8-byte
                               big-endian N first, then sends N random bytes while reading the
                               client's bytes until EOF, then the same 72-byte trailer.

Standard library only. Runs until killed.
"""

import hashlib
import os
import selectors
import socket
import struct
import sys
import threading
import time


def listener(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(4096)
    return s


def serve_threads(ls, handler, *args):
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=guarded, args=(handler, conn, *args), daemon=True).start()


def guarded(handler, conn, *args):
    try:
        handler(conn, *args)
    except OSError as e:
        print(f"servers.py: {handler.__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        conn.close()


def hello(conn):
    conn.settimeout(30)
    body = b"Hello world!\n"
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = conn.recv(4096)
            if not d:
                return
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def duplex(conn, nbytes):
    conn.settimeout(120)
    got = {"hash": hashlib.sha256(), "n": 0}

    def reader():
        try:
            while True:
                d = conn.recv(1 << 20)
                if not d:
                    break
                got["hash"].update(d)
                got["n"] += len(d)
        except OSError as e:
            got["error"] = e

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent = hashlib.sha256()
    left = nbytes
    while left:
        chunk = os.urandom(min(1 << 20, left))
        sent.update(chunk)
        conn.sendall(chunk)
        left -= len(chunk)
    t.join()
    if "error" in got:
        raise got["error"]
    conn.sendall(sent.digest() + got["hash"].digest() + got["n"].to_bytes(8, "big"))


def read_to_eof(conn):
    """Everything the peer sends, until its EOF: (bytes counted, sha256)."""
    conn.settimeout(60)
    h = hashlib.sha256()
    n = 0
    while True:
        d = conn.recv(1 << 16)
        if not d:
            return n, h
        h.update(d)
        n += len(d)


def halfclose(conn, delay):
    n, h = read_to_eof(conn)
    if delay:
        time.sleep(delay)
    conn.sendall(b"received %d bytes sha256 %s\n" % (n, h.hexdigest().encode()))


def shutfirst(conn):
    conn.settimeout(60)
    conn.sendall(b"hello\n")
    conn.shutdown(socket.SHUT_WR)
    h = hashlib.sha256()
    n = 0
    while True:
        d = conn.recv(1 << 16)
        if not d:
            break
        h.update(d)
        n += len(d)
    print(f"received {n} bytes sha256 {h.hexdigest()}", flush=True)


def accept_only(ls):
    held = []
    while True:
        conn, _ = ls.accept()
        held.append(conn)


def echo(ls):
    sel = selectors.DefaultSelector()
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    state = {}  # conn -> [pending bytearray, eof]

    def update(conn):
        buf, eof = state[conn]
        ev = 0
        if not eof and len(buf) < (1 << 20):
            ev |= selectors.EVENT_READ
        if buf:
            ev |= selectors.EVENT_WRITE
        if ev:
            sel.modify(conn, ev, None)
        else:
            drop(conn, shut=eof)

    def drop(conn, shut=False):
        sel.unregister(conn)
        del state[conn]
        if shut:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        conn.close()

    while True:
        for key, ev in sel.select():
            if key.fileobj is ls:
                try:
                    conn, _ = ls.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                conn.setblocking(False)
                state[conn] = [bytearray(), False]
                sel.register(conn, selectors.EVENT_READ, None)
                continue
            conn = key.fileobj
            if conn not in state:
                continue
            buf = state[conn][0]
            try:
                if ev & selectors.EVENT_READ:
                    d = conn.recv(1 << 16)
                    if d:
                        buf += d
                    else:
                        state[conn][1] = True
                if buf:
                    try:
                        n = conn.send(buf)
                        del buf[:n]
                    except BlockingIOError:
                        pass
            except OSError:
                drop(conn)
                continue
            update(conn)


PATTERN = bytes(range(256)) * 256  # 64 KiB; the byte at stream offset i is i % 256


def source(conn, nbytes):
    conn.settimeout(300)
    sent = 0
    next_report = 1 << 20
    while sent < nbytes:
        chunk = PATTERN[:min(len(PATTERN), nbytes - sent)]
        conn.sendall(chunk)
        sent += len(chunk)
        if sent >= next_report:
            print(f"sent {sent}", flush=True)
            next_report += 1 << 20
    print(f"sent {sent}", flush=True)
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(1 << 16):
        pass


def resetmid(conn, nbytes, trigger):
    conn.settimeout(60)
    how = conn.recv(1)
    sent = 0
    while sent < nbytes:
        chunk = PATTERN[:min(len(PATTERN), nbytes - sent)]
        conn.sendall(chunk)
        sent += len(chunk)
    deadline = time.monotonic() + 60
    while how == b"w" and not os.path.exists(trigger) and time.monotonic() < deadline:
        time.sleep(0.02)
    if how == b"w" and os.path.exists(trigger):
        os.unlink(trigger)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    print(f"reset {time.monotonic():.6f}", flush=True)


def stall(conn, trigger, first):
    conn.settimeout(300)
    h = hashlib.sha256()
    n = 0
    while n < first:
        d = conn.recv(min(1 << 16, first - n))
        if not d:
            break
        h.update(d)
        n += len(d)
    deadline = time.monotonic() + 300
    while not os.path.exists(trigger) and time.monotonic() < deadline:
        time.sleep(0.02)
    while True:
        d = conn.recv(1 << 16)
        if not d:
            break
        h.update(d)
        n += len(d)
    conn.sendall(b"received %d bytes sha256 %s\n" % (n, h.hexdigest().encode()))


def whoami(conn, name):
    n, h = read_to_eof(conn)
    conn.sendall(b"%s received %d bytes sha256 %s\n" % (name.encode(), n, h.hexdigest().encode()))


def sized(conn):
    conn.settimeout(120)
    head = b""
    while len(head) < 8:
        d = conn.recv(8 - len(head))
        if not d:
            return
        head += d
    duplex(conn, int.from_bytes(head, "big"))


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port = argv[1], argv[2], int(argv[3])
    ls = listener(host, port)
    if mode == "hello":
        serve_threads(ls, hello)
    elif mode == "echo":
        echo(ls)
    elif mode == "duplex":
        serve_threads(ls, duplex, int(argv[4]))
    elif mode == "halfclose":
        serve_threads(ls, halfclose, float(argv[4]) if len(argv) > 4 else 0.0)
    elif mode == "shutfirst":
        serve_threads(ls, shutfirst)
    elif mode == "accept-only":
        accept_only(ls)
    elif mode == "source":
        serve_threads(ls, source, int(argv[4]))
    elif mode == "resetmid":
        serve_threads(ls, resetmid, int(argv[4]), argv[5])
    elif mode == "stall":
        serve_threads(ls, stall, argv[4], int(argv[5]))
    elif mode == "whoami":
        serve_threads(ls, whoami, argv[4])
    elif mode == "sized":
        serve_threads(ls, sized)
    else:
        print(f"servers.py: unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:
        sys.exit(0)
