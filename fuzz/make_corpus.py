#!/usr/bin/python3
"""Regenerates the fuzz seed corpora (fuzz/corpus/NAME/) and the fixed ingest
reference feeds (fuzz/ingest_reference/) from the project's own inputs: the
example queries and comparisons, a small `carecount generate` data set, and the
request, HTTP, policy and configuration shapes the tests use.

usage: make_corpus.py SOURCE_DIR BUILD_DIR FUZZ_BUILD_DIR
(scripts/fuzz_corpus.sh runs it; /usr/bin/python3 for python3-msgpack).

Must never: write outside fuzz/corpus, fuzz/ingest_reference and a temporary
directory of its own.
"""
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import msgpack

src, build, fuzz_build = sys.argv[1:4]
corpus = os.path.join(src, "fuzz", "corpus")
reference = os.path.join(src, "fuzz", "ingest_reference")


def seed(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for d in (corpus, reference):
    shutil.rmtree(d, ignore_errors=True)
os.makedirs(reference)

queries = []
for sub in ("queries", "comparisons"):
    for name in sorted(os.listdir(os.path.join(src, "examples", sub))):
        with open(os.path.join(src, "examples", sub, name)) as f:
            text = f.read()
        (queries if sub == "queries" else []).append(json.loads(text))
        if sub == "queries":
            seed("query_json", text)
            seed("query", b"\x00" + msgpack.packb(json.loads(text)))
            seed("query", b"\x01" + msgpack.packb(json.loads(text)))
        else:
            comparison = json.loads(text)
            req = {"v": 1, "id": 7, "op": "compare", "comparison": comparison}
            seed("request", msgpack.packb(req))

# requests: every op's envelope, count with each example query
for op in ("ping", "status", "schema", "codelists", "saved_list", "transparency"):
    seed("request", msgpack.packb({"v": 1, "id": 1, "op": op}))
seed("request", msgpack.packb({"v": 1, "id": 2, "op": "hello", "token": "cc_" + "a" * 40}))
for i, q in enumerate(queries):
    seed("request", msgpack.packb({"v": 1, "id": 10 + i, "op": "count", "query": q}))

# frames: a few request bodies, framed, behind the limit and cut bytes
bodies = [msgpack.packb({"v": 1, "id": 1, "op": "ping"}),
          msgpack.packb({"v": 1, "id": 3, "op": "count", "query": queries[0]})]
stream = b"".join(len(b).to_bytes(4, "big") + b for b in bodies)
for prefix in (b"\x05\x00", b"\x05\x03", b"\x04\x02", b"\x02\x01"):
    seed("frame", prefix + stream)
seed("frame", b"\x05\x03GET / HTTP/1.1\r\n\r\n")

# HTTP: the routes, a preflight, pipelining, 100-continue
def post(path, body, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer cc_{'b' * 40}\r\n"
            f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}")

http = [
    "GET /v1/ping HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /v1/status HTTP/1.0\r\n\r\n",
    "GET /v1/schema HTTP/1.1\r\nHost: x\r\nOrigin: https://dash.example.org\r\n\r\n",
    "OPTIONS /v1/count HTTP/1.1\r\nHost: x\r\nOrigin: https://dash.example.org\r\n"
    "Access-Control-Request-Method: POST\r\n\r\n",
    post("/v1/count", json.dumps({"query": queries[0]})),
    post("/v1/hello", json.dumps({"token": "cc_" + "c" * 40}), "Expect: 100-continue\r\n"),
    "GET /v1/ping HTTP/1.1\r\n\r\n" + post("/v1/count", json.dumps({"query": queries[-1]})),
    "POST /v1/count HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n",
]
for h in http:
    seed("http", b"\x01" + h.encode())
    seed("http", b"\x0e" + h.encode())
seed("http", b"\x01" + json.dumps({"v": 1, "id": 4, "ok": True, "cells": [[1, 2]]}).encode())
seed("http", b"\x01" + msgpack.packb({"v": 1, "id": 4, "ok": False,
                                       "error": {"code": "INVAL", "message": "query: x"}}))

# policy: the defaults spelled out, and fixed mode
seed("policy", json.dumps({"version": "fuzz-1", "threshold": 10, "show_zeros": False,
                           "rounding_base": 5, "max_noise": 3, "noise_variance": 2.0}))
seed("policy", json.dumps({"version": "fixed-1", "mode": "fixed", "protection_level": 2}))
seed("policy", "{}")

# configuration: a file, and argv (NUL-separated)
seed("config", b"\x00" + json.dumps({"listen": "127.0.0.1:0", "max-connections": 64,
                                     "http-listen": "127.0.0.1:0",
                                     "cors-origin": ["https://a.example"],
                                     "test-mode": True}).encode())
seed("config", b"\x01" + b"\x00".join([b"--listen", b"[::1]:7000", b"--idle-timeout-ms", b"500",
                                        b"--allow-remote", b"--max-frame-bytes", b"4096"]))

# the generated data set: tiny reference feeds and seeds of every feed
tmp = tempfile.mkdtemp(prefix="cc-corpus-")
try:
    gen = os.path.join(tmp, "gen")
    subprocess.run([os.path.join(build, "carecount"), "generate", "--patients", "1000",
                    "--seed", "7", "--out", gen, "--quiet"], check=True)

    def rows(name):
        with open(os.path.join(gen, name), newline="", encoding="utf-8") as f:
            return list(csv.reader(f))

    def write(path, table):
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(table)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(out.getvalue())
        return out.getvalue()

    # two LSOAs and their chain up to the region
    areas = rows("areas.csv")
    by_code = {r[0]: r for r in areas[1:]}
    lsoas = [r[0] for r in areas[1:] if r[2] == "lsoa"][:2]
    keep = set()
    for code in lsoas:
        while code:
            keep.add(code)
            code = by_code[code][3]
    write(os.path.join(reference, "areas.csv"),
          [areas[0]] + [r for r in areas[1:] if r[0] in keep])
    postcodes = rows("postcodes.csv")
    pcs = [r for r in postcodes[1:] if r[1] in lsoas]
    write(os.path.join(reference, "postcodes.csv"), [postcodes[0]] + pcs)
    population = rows("population.csv")
    write(os.path.join(reference, "population.csv"),
          [population[0]] + [r for r in population[1:] if r[0] in lsoas])
    canon = {p[0].replace(" ", "").upper() for p in pcs}

    regs = rows("gp_registrations.csv")
    h = regs[0]
    local = [r for r in regs[1:] if r[h.index("postcode")].replace(" ", "").upper() in canon][:6]
    write(os.path.join(reference, "gp_registrations.csv"), [h] + local)
    nhs = {r[h.index("nhs_number")] for r in local}

    feeds = {}
    for name in ("optout_register.csv", "gp_registrations.csv", "gp_events.csv", "hes_apc.csv",
                 "community_contacts.csv"):
        table = rows(name)
        col = table[0].index("nhs_number")
        mine = [r for r in table[1:] if r[col] in nhs][:8] or table[1:4]
        feeds[name] = write(os.path.join(tmp, name), [table[0]] + mine)
    kinds = ["optout_register.csv", "gp_registrations.csv", "gp_events.csv", "hes_apc.csv",
             "community_contacts.csv", "areas.csv", "postcodes.csv", "population.csv"]
    for i, name in enumerate(kinds):
        text = feeds.get(name) or open(os.path.join(reference, name), encoding="utf-8").read()
        seed("ingest", bytes([i]) + text.encode())
        seed("csv", b"\x00" + text.encode())
        seed("csv", b"\x01" + text.encode())
    seed("csv", b"\x00" + b'\xef\xbb\xbfa,b,c\r\n1,"x, y",3\r\n"q""q",2,"multi\nline"\r\n\r\n4,5\n')
    seed("csv", b"\x01" + b'name,v\n"unclosed,1\nok,2\nst"ray,3\n')

    # validators: field values from the feeds, and the edge shapes
    values = set()
    for name in ("gp_registrations.csv", "gp_events.csv", "hes_apc.csv"):
        table = list(csv.reader(io.StringIO(feeds[name])))
        for r in table[1:3]:
            values.update(v for v in r if v)
    values.update(["943 476 5919", "9434765919", "GIR 0AA", "ec1a1bb", "I10X", "E11.9",
                   "K40.1", "44054006", "B86001", "RR801", "9Nu0.", "2024-02-29", "1899-12-31"])
    for v in sorted(values):
        seed("validate", v)

    # snapshots: ingest the tiny set, sign the snapshot with the fuzzing key
    key = os.path.join(tmp, "key")
    data = os.path.join(tmp, "data")
    subprocess.run([os.path.join(build, "carecount"), "keygen", key], check=True,
                   stdout=subprocess.DEVNULL)
    args = [os.path.join(build, "carecount"), "ingest", "--data", data, "--key", key,
            "--today", "2026-06-01"]
    for kind, name in (("areas", "areas.csv"), ("postcodes", "postcodes.csv"),
                       ("population", "population.csv")):
        args.append(f"{kind}={os.path.join(reference, name)}")
    for kind, name in (("gp_registrations", "gp_registrations.csv"), ("gp_events", "gp_events.csv"),
                       ("hes_apc", "hes_apc.csv"), ("community", "community_contacts.csv")):
        args.append(f"{kind}={os.path.join(tmp, name)}")
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    snap = [n for n in os.listdir(data) if n.endswith(".snap")][0]
    raw = open(os.path.join(data, snap), "rb").read()
    seed("snapshot_keyed", raw)
    signed = os.path.join(tmp, "signed")
    env = dict(os.environ, FUZZ_SNAPSHOT_WRITE=signed)
    subprocess.run([os.path.join(fuzz_build, "fuzz", "fuzz_snapshot_keyed"),
                    os.path.join(corpus, "snapshot_keyed", hashlib.sha1(raw).hexdigest()[:16])],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    good = open(signed, "rb").read()
    seed("snapshot", good)
    seed("snapshot", good[: len(good) // 2])
    seed("snapshot", raw)  # another key
finally:
    shutil.rmtree(tmp)
