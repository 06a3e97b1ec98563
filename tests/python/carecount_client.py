#!/usr/bin/env python3
"""A carecount client in Python, written from docs/protocol.md alone.

It shows that the protocol document is enough to talk to carecountd from a
second language: TCP, 4-byte big-endian length + one msgpack map per frame,
the {"v", "id", "op"} envelope, hello with a token, count and compare.

    carecount_client.py --port PORT --token-file FILE count QUERY.json
    carecount_client.py --port PORT --token-file FILE compare COMPARISON.json

prints the reply map as JSON on stdout. Exit status 0 on an ok reply, 1 on
an error reply (its code and message on stderr), 2 on a usage error.
"""
import argparse
import json
import os
import socket
import stat
import struct
import sys

import msgpack

MAX_REPLY = 64 << 20


class ProtocolError(Exception):
    pass


class Client:
    def __init__(self, host, port, timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.next_id = 1

    def _recv_exact(self, n):
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ProtocolError("the server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, op, **fields):
        request_id = self.next_id
        self.next_id += 1
        body = msgpack.packb({"v": 1, "id": request_id, "op": op, **fields}, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        (length,) = struct.unpack(">I", self._recv_exact(4))
        if length > MAX_REPLY:
            raise ProtocolError("reply frame too long")
        reply = msgpack.unpackb(self._recv_exact(length), raw=False)
        if not isinstance(reply, dict) or reply.get("v") != 1:
            raise ProtocolError("not a version 1 reply map")
        if reply.get("id") not in (request_id, None):
            raise ProtocolError("reply to another request")
        return reply

    def close(self):
        self.sock.close()


def read_token(path):
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SystemExit("token file %s is readable by others; chmod 600 it" % path)
    with open(path) as f:
        return f.read().strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7433)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("op", choices=["count", "compare"])
    parser.add_argument("request", help="the query or comparison as JSON")
    args = parser.parse_args()
    with open(args.request) as f:
        request = json.load(f)

    client = Client(args.host, args.port)
    try:
        hello = client.call("hello", token=read_token(args.token_file))
        if not hello["ok"]:
            print("hello: %s: %s" % (hello["error"]["code"], hello["error"]["message"]),
                  file=sys.stderr)
            return 1
        if args.op == "count":
            reply = client.call("count", query=request)
        else:
            reply = client.call("compare", comparison=request)
    finally:
        client.close()
    if not reply["ok"]:
        print("%s: %s: %s" % (args.op, reply["error"]["code"], reply["error"]["message"]),
              file=sys.stderr)
        return 1
    json.dump(reply, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
