#!/usr/bin/python3
"""Bad clients for the soak test (tests/soak/soak.sh): for SECONDS, keeps
about N connections at a time to the msgpack and HTTP ports, each one of:

  slow       trickles a valid frame a byte at a time (the frame deadline
             closes it)
  malformed  sends a length prefix and garbage, or a frame of random bytes
  abandoned  sends half a frame, or half an HTTP request, and closes
  http-bad   sends a malformed HTTP request, or a slowloris header
  idle       connects and says nothing

It asserts nothing about the server's answers (the good clients do that);
it fails only if a connection cannot be opened at all, which would mean
the server stopped accepting. Prints one line: how many of each it ran.

usage: abuse.py MSGPACK_PORT HTTP_PORT SECONDS N
"""
import random
import socket
import struct
import sys
import threading
import time

port, http_port, seconds, n = (int(a) for a in sys.argv[1:5])
deadline = time.monotonic() + seconds
counts = {k: 0 for k in ("slow", "malformed", "abandoned", "http-bad", "idle")}
failures = []
lock = threading.Lock()
rng = random.Random(20261202)


def connect(p):
    s = socket.create_connection(("127.0.0.1", p), timeout=5)
    s.settimeout(5)
    return s


def drain(s, limit=2.0):
    s.settimeout(limit)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def one(kind, r):
    if kind == "slow":
        s = connect(port)
        body = b"\x83\xa1v\x01\xa2id\x01\xa2op\xa4ping"
        frame = struct.pack(">I", len(body)) + body
        try:
            for b in frame:
                if time.monotonic() > deadline:
                    break
                s.send(bytes([b]))
                time.sleep(0.3)
        except OSError:
            pass  # closed by the frame deadline: what should happen
        s.close()
    elif kind == "malformed":
        s = connect(port)
        try:
            if r.random() < 0.5:
                s.send(struct.pack(">I", r.randint(1, 1 << 30)) + bytes(r.randrange(256) for _ in range(64)))
            else:
                junk = bytes(r.randrange(256) for _ in range(r.randint(1, 300)))
                s.send(struct.pack(">I", len(junk)) + junk)
            drain(s)
        except OSError:
            pass
        s.close()
    elif kind == "abandoned":
        if r.random() < 0.5:
            s = connect(port)
            s.send(struct.pack(">I", 100) + b"\x83\xa1v")
        else:
            s = connect(http_port)
            s.send(b"POST /v1/count HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"que")
        s.close()
    elif kind == "http-bad":
        s = connect(http_port)
        try:
            if r.random() < 0.5:
                s.send(b"GET /v1/\x00\xff HTTP/9.9\r\n\r\n" + bytes(r.randrange(256) for _ in range(50)))
                drain(s)
            else:
                s.send(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n")
                for _ in range(10):
                    if time.monotonic() > deadline:
                        break
                    s.send(b"X-Slow: 1\r\n")
                    time.sleep(0.3)
        except OSError:
            pass
        s.close()
    else:
        s = connect(port if r.random() < 0.5 else http_port)
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        s.close()


def worker(seed):
    r = random.Random(seed)
    while time.monotonic() < deadline:
        kind = r.choice(list(counts))
        try:
            one(kind, r)
            with lock:
                counts[kind] += 1
        except OSError as e:
            with lock:
                failures.append(f"{kind}: {e}")
            time.sleep(0.1)


threads = [threading.Thread(target=worker, args=(rng.random(),)) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("abuse: " + ", ".join(f"{k} {v}" for k, v in counts.items())
      + f"; {len(failures)} connections refused")
# a few refusals under the connection limit are allowed; many mean the
# server stopped accepting
sys.exit(1 if len(failures) > sum(counts.values()) // 10 else 0)
