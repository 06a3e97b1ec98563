#!/usr/bin/python3
"""Crash loops: kill -9 carecount at random points and prove nothing committed is lost.

    crash_loop.py --bin BUILD_DIR [--cycles N] [--seed S] [--patients P]
                  [--work DIR] [--keep] [--report FILE] [--quiet]

Sets up a data directory once (carecount generate, keygen, ingest; a
practice, a researcher and an operator account with tokens; carecountd
serving it), then runs N cycles. Each cycle picks one operation at random
and SIGKILLs the process doing it after a random delay, from 0 to 1.25
times the operation's usual duration (the median of 3 uninterrupted runs,
measured at the start and every 100 cycles):

  ingest    `carecount ingest` of a new feed (new hospital episodes and
            community contacts, new opt-out events), while the server runs;
            or the same with opt-outs registered through the server at the
            same time, the server killed too at its own random point; or
            the first ingest into a new data directory, killed, then run
            again to the end (it must make the store an uninterrupted one
            makes), then the server's first start killed
  optout    opt-outs registered and withdrawn through the server
            (optout_register / optout_withdraw over msgpack, a practice
            account), or with `carecount optout register|withdraw` directly;
            the server (or the command) is killed mid-stream
  account   `carecount account add/disable` and `carecount token
            issue/revoke`, one after another, the running one killed; or
            the same over msgpack as an operator, the server killed
  count     count queries answered by the server (each audited, each first
            answer recorded in the disclosure ledger), killed mid-stream

Whatever reported success before the kill (an ok reply; a command that
exited 0) is recorded as committed. After each kill the dead processes are
reaped, the server restarted if it was killed (or after an ingest, to prove
the new store loads), and an independent reader (this script, with Python's
own sqlite3 and hashlib modules: no carecount code) checks that

  - PRAGMA integrity_check is ok;
  - every committed opt-out event (by pseudonym, computed here from the key
    with hashlib's BLAKE2b as docs/optout.md describes), account, account
    disable, token (by selector) and token revocation is in state.db, and
    no opt-out event seen before has changed;
  - every reply received has its own audit record (account, op, the person
    or the query's ranges, outcome), every audit record seen before is
    still there unchanged, the seqs have no gap (max(seq) == count(*)),
    and `carecount audit verify` exits 0;
  - every first-time count answer has its ledger entry, and no ledger entry
    seen before is lost;
  - every committed ingest's store version and feed files are recorded, the
    current snapshot exists and carecountd serves it (ping reports it);
  - every rejects report lists exactly the rows state.db says its version
    rejected;
  - writer.lock is free (flock succeeds) once the killed process is gone,
    and no stale snapshot is left beyond one per ingest killed since the
    last committed one (which removes them).

At the end, one made-up committed record of each kind must be reported
lost (the reader is not vacuous). docs/reliability.md, "Crash loops", has
the figures of the long run.

Exit status 0 when every check of every cycle passed and no record was
lost; 1 otherwise (the failures are printed). With --report FILE the
figures are written as JSON.
"""
import argparse
import base64
import collections
import csv
import datetime
import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

OPS = ("ingest", "optout", "account", "count")
VARIANTS = ("ingest", "first-ingest", "optout-server", "optout-command", "account",
            "account-server", "count")
# a variant with no duration of its own: the ingest's and optout-server's apply
EPOCH = datetime.date(1900, 1, 1)


def day_number(text):
    return (datetime.date.fromisoformat(text) - EPOCH).days


def nhs_valid(digits):
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def read_key(path):
    with open(path) as f:
        lines = f.read().split()
    if len(lines) != 2 or lines[0] != "carecount-key-v1" or len(lines[1]) != 64:
        raise SystemExit("%s: not a carecount key file" % path)
    return bytes.fromhex(lines[1])


def pseudonym(key, nhs):
    """BLAKE2b-128 keyed with the key over "carecount-nhs-v1", NUL, the digits."""
    return hashlib.blake2b(b"carecount-nhs-v1\0" + nhs.encode(), key=key, digest_size=16).digest()


def token_selector(token):
    """The 12-byte selector of a token "cct1.<16 base64url>.<43 base64url>"."""
    prefix, sel, _secret = token.split(".")
    if prefix != "cct1" or len(sel) != 16:
        raise ValueError("not a token")
    return base64.urlsafe_b64decode(sel)


class Client:
    """docs/protocol.md: 4-byte big-endian length, one msgpack map per frame."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.next_id = 1
        self.buf = b""

    def send(self, op, **fields):
        rid = self.next_id
        self.next_id += 1
        body = msgpack.packb({"v": 1, "id": rid, "op": op, **fields}, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        return rid

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        (length,) = struct.unpack(">I", self._exact(4))
        return msgpack.unpackb(self._exact(length), raw=False)

    def call(self, op, **fields):
        rid = self.send(op, **fields)
        reply = self.recv()
        if reply.get("id") != rid:
            raise RuntimeError("reply to another request")
        return reply

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def audit_marker(op, request):
    """What tells one request's audit record apart: the person of an opt-out
    op, the date and age range of a count (see Loop.stream)."""
    if op == "hello" or not request:
        return None
    try:
        req = json.loads(request)
    except ValueError:
        return None
    if op.startswith("optout_"):
        return req.get("person")
    if op in ("account_add", "account_disable", "token_issue", "token_revoke"):
        # {"name": ...}, {"account": ...} or {"token_id": ...}: names and ids only
        return str(next(iter(req.values()))) if len(req) == 1 else None
    if op == "count":
        f = req.get("filters", {})
        d, a = f.get("date_range", {}), f.get("age", {})
        return (d.get("from"), d.get("to"), a.get("min"), a.get("max"))
    return None


class Killer:
    """SIGKILLs proc after delay seconds (None: never) unless stopped first."""

    def __init__(self, delay, proc):
        self.proc = proc
        self.killed = False
        self.event = threading.Event()
        self.thread = threading.Thread(target=self._fire, args=(delay,), daemon=True)
        self.thread.start()

    def _fire(self, delay):
        if delay is None or self.event.wait(delay):
            return
        if self.proc.poll() is None:
            self.killed = True  # before the signal: its effects are seen at once
            self.proc.send_signal(signal.SIGKILL)

    def stop(self):
        self.event.set()
        self.thread.join()


class Failure(Exception):
    pass


class Loop:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin)
        self.rng = random.Random(args.seed)
        self.work = args.work
        self.data = os.path.join(self.work, "data")
        self.keyfile = os.path.join(self.work, "secrets", "key")
        self.feeds = os.path.join(self.work, "feeds")
        self.server = None
        self.server_log = None
        self.port = None
        # what reported success: the ledger the reader checks
        self.optouts = set()            # (pseudonym, type, effective_day, action)
        self.accounts = {}              # name -> disabled committed?
        self.tokens = {}                # selector -> {"account", "revoked"}
        self.replies = collections.Counter()  # (account, op) -> replies received
        self.ingests = []               # (store_version, [content hashes])
        self.audit_seen = {}            # seq -> hash
        self.optout_rows_seen = {}      # sequence -> row
        self.audit_expect = []          # (account, op, marker, outcome) of this cycle's replies
        self.audit_from = 0             # the audit seq this cycle's stream started after
        self.markers_used = set()
        self.ledger_seen = {}           # id -> (account, fingerprint, at_s)
        self.ledger_from = 0            # the ledger id this cycle's count stream started after
        self.ledger_expect = 0          # count answers (ok) of this cycle's stream
        # figures
        self.cycles = 0
        self.per_op = collections.Counter()
        self.kills = collections.Counter()
        self.lost = 0
        self.failures = []
        self.max_litter = 0
        self.durations = {}
        self.ingest_no = 0
        self.ingest_kills_since_commit = 0
        self.ledger_answers = 0
        self.quiet_failures = False
        self.next_account = 0
        self.registered = {}            # nhs -> [effective days of committed registrations]

    # ---------------------------------------------------------------- helpers
    def log(self, text):
        if not self.args.quiet:
            print(text, flush=True)

    def run(self, argv, stdin=None, check=True):
        p = subprocess.run([os.path.join(self.bin, argv[0])] + argv[1:], input=stdin,
                           capture_output=True, text=True)
        if check and p.returncode != 0:
            raise Failure("%s exited %d: %s" % (" ".join(argv[:2]), p.returncode, p.stderr.strip()))
        return p

    def db(self):
        return sqlite3.connect("file:%s?mode=rw" % os.path.join(self.data, "state.db"), uri=True,
                               timeout=10)

    # ----------------------------------------------------------------- server
    def start_server(self):
        port_file = os.path.join(self.work, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.server_log = open(os.path.join(self.work, "carecountd.log"), "ab")
        self.server = subprocess.Popen(
            [os.path.join(self.bin, "carecountd"), "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--data", self.data, "--key", self.keyfile,
             "--codelists", os.path.join(self.feeds, "codelists")],
            stdout=subprocess.DEVNULL, stderr=self.server_log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise Failure("carecountd exited %d at start (see %s/carecountd.log)"
                              % (self.server.returncode, self.work))
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        raise Failure("carecountd did not start")

    def kill_server(self):
        if self.server is not None:
            if self.server.poll() is None:
                self.server.send_signal(signal.SIGKILL)
            self.server.wait()
            self.server = None
            self.server_log.close()

    def server_log_tail(self):
        try:
            with open(os.path.join(self.work, "carecountd.log"), errors="replace") as f:
                return " | ".join(f.read().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def hello(self, client, account, token):
        reply = client.call("hello", token=token)
        self.replies[(account, "hello")] += 1
        if not reply["ok"]:
            raise Failure("hello as %s: %s" % (account, reply["error"]))

    # ------------------------------------------------------------------ setup
    def setup(self):
        os.umask(0o077)
        os.makedirs(os.path.join(self.work, "secrets"))
        self.run(["carecount", "generate", "--quiet", "--patients", str(self.args.patients),
                  "--seed", str(self.args.seed), "--out", self.feeds])
        self.run(["carecount", "keygen", self.keyfile])
        self.key = read_key(self.keyfile)
        p = self.run(["carecount", "ingest", "--quiet", "--data", self.data, "--key", self.keyfile,
                      self.feeds])
        self.record_ingest(p)
        self.first_store = self.store_summary(self.data)
        with open(os.path.join(self.feeds, "community_contacts.csv"), newline="") as f:
            self.community = list(csv.reader(f))
        with open(os.path.join(self.feeds, "hes_apc.csv"), newline="") as f:
            self.hes = list(csv.reader(f))
        # the practice with most patients; its patients by their latest registration
        latest = {}
        with open(os.path.join(self.feeds, "gp_registrations.csv"), newline="") as f:
            for row in csv.DictReader(f):
                nhs = row["nhs_number"]
                if nhs_valid(nhs) and (nhs not in latest or row["registration_date"] >= latest[nhs][0]):
                    latest[nhs] = (row["registration_date"], row["practice_code"])
        by_practice = collections.Counter(p for _, p in latest.values())
        self.practice = by_practice.most_common(1)[0][0]
        candidates = sorted(n for n, (_, p) in latest.items() if p == self.practice)
        self.all_nhs = sorted(latest)
        # accounts the loop uses
        self.run(["carecount", "account", "add", "crash-practice", "--role", "practice",
                  "--practice", self.practice, "--data", self.data])
        self.run(["carecount", "account", "add", "crash-researcher", "--role", "researcher",
                  "--data", self.data])
        self.run(["carecount", "account", "add", "crash-operator", "--role", "operator",
                  "--data", self.data])
        self.accounts["crash-practice"] = False
        self.accounts["crash-researcher"] = False
        self.accounts["crash-operator"] = False
        self.practice_token = self.issue("crash-practice")
        self.researcher_token = self.issue("crash-researcher")
        self.operator_token = self.issue("crash-operator")
        db = self.db()
        try:
            self.researcher_id = db.execute("SELECT id FROM account WHERE name = ?",
                                            ("crash-researcher",)).fetchone()[0]
        finally:
            db.close()
        self.queries = []
        qdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                            "queries")
        for name in sorted(os.listdir(qdir)):
            if name.endswith(".json") and name != "too_fine.json":  # too_fine: TOOBIG, unparsed
                with open(os.path.join(qdir, name)) as f:
                    self.queries.append(json.load(f))
        self.start_server()
        # the practice's patients the server knows (the others get NOTFOUND)
        client = Client(self.port)
        self.hello(client, "crash-practice", self.practice_token)
        self.patients = []
        for nhs in candidates:
            reply = client.call("optout_status", nhs_number=nhs)
            self.replies[("crash-practice", "optout_status")] += 1
            if reply["ok"]:
                self.patients.append(nhs)
        client.close()
        if len(self.patients) < 10:
            raise Failure("only %d patients of practice %s are served" % (len(self.patients),
                                                                        self.practice))
        self.log("set up: %s; practice %s with %d patients; %d queries"
                 % (self.work, self.practice, len(self.patients), len(self.queries)))
        self.calibrate()

    def calibrate(self):
        """The usual duration of each operation: the median of 3 uninterrupted runs
        (again every 100 cycles, as the store grows)."""
        for op in VARIANTS:
            times = []
            for _ in range(3):
                t0 = time.monotonic()
                self.variant(op, None)
                times.append(self.ingest_elapsed if op.endswith("ingest")
                             else time.monotonic() - t0)
                self.check(op)
            self.durations[op] = sorted(times)[1]
        self.log("usual durations: " + ", ".join("%s %.3f s" % (k, v)
                                                 for k, v in self.durations.items()))

    def variant(self, op, delay):
        if op == "optout-server":
            return self.optout_server(delay)
        if op == "optout-command":
            return self.optout_commands(delay)
        if op == "first-ingest":
            return self.first_ingest(delay)
        if op == "account-server":
            return self.account_server(delay)
        if op == "ingest+optout":
            return self.op_ingest(delay, concurrent=True)
        return getattr(self, "op_" + op)(delay)

    def issue(self, account):
        p = self.run(["carecount", "token", "issue", account, "--data", self.data])
        token = p.stdout.strip()
        self.tokens[token_selector(token)] = {"account": account, "revoked": False}
        return token

    def record_ingest(self, p):
        """A committed ingest: its store version and the files it recorded."""
        db = self.db()
        try:
            version = db.execute("SELECT max(version) FROM store_version").fetchone()[0]
            hashes = [r[0] for r in db.execute(
                "SELECT content_hash FROM ingest_file WHERE store_version = ?", (version,))]
        finally:
            db.close()
        self.ingests.append((version, hashes))

    def delay(self, op):
        return self.rng.uniform(0, 1.25 * self.durations[op])

    # -------------------------------------------------------------- operations
    def op_ingest(self, delay, concurrent=False):
        """A new feed: episodes and contacts under new keys, new opt-out events.
        concurrent: opt-outs are registered through the server while it runs,
        and the server too is killed at a random point."""
        self.ingest_no += 1
        n = self.ingest_no
        feed = os.path.join(self.work, "feed-%06d" % n)
        os.makedirs(feed)
        header, rows = self.community[0], self.community[1:]
        with open(os.path.join(feed, "community_contacts.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i, row in enumerate(self.rng.sample(rows, min(400, len(rows)))):
                w.writerow(["7%06d%05d" % (n, i)] + row[1:])
        header, rows = self.hes[0], self.hes[1:]
        with open(os.path.join(feed, "hes_apc.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i, row in enumerate(self.rng.sample(rows, min(300, len(rows)))):
                w.writerow(["8%06d%05d" % (n, i)] + row[1:])
        events = []
        with open(os.path.join(feed, "optout_register.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["nhs_number", "optout_type", "action", "effective_date", "practice_code"])
            for nhs in self.rng.sample(self.all_nhs, 5):
                day = EPOCH + datetime.timedelta(days=self.rng.randrange(day_number("2019-01-01"),
                                                                         day_number("2025-12-31")))
                kind = self.rng.choice(["ndop", "type1"])
                w.writerow([nhs, kind, "register", day.isoformat(), ""])
                events.append((pseudonym(self.key, nhs), 1 if kind == "type1" else 2,
                               (day - EPOCH).days, 1))
        argv = [os.path.join(self.bin, "carecount"), "ingest", "--quiet", "--data", self.data,
                "--key", self.keyfile, "community=" + os.path.join(feed, "community_contacts.csv"),
                "hes_apc=" + os.path.join(feed, "hes_apc.csv"),
                "optouts=" + os.path.join(feed, "optout_register.csv")]
        started = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killer = Killer(delay, p)
        if concurrent:
            self.optout_server(self.delay("optout-server") if delay is not None else None)
        _, err = p.communicate()
        self.ingest_elapsed = time.monotonic() - started
        killer.stop()
        if p.returncode == 0:
            self.ingest_kills_since_commit = 0
            self.record_ingest(p)
            self.optouts.update(events)
            shutil.rmtree(feed)
        elif p.returncode == -signal.SIGKILL:
            self.kills["ingest"] += 1
            self.ingest_kills_since_commit += 1
            shutil.rmtree(feed)
        else:
            raise Failure("ingest exited %d: %s" % (p.returncode, err.decode().strip()))
        # the store loads: a fresh server must serve the latest version
        self.kill_server()
        self.start_server()

    def store_summary(self, data):
        """What a first ingest of the feeds made: versions, persons, records, events."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "state.db"), uri=True)
        try:
            return (db.execute("SELECT version, n_persons, n_records FROM store_version"
                               " ORDER BY version").fetchall(),
                    db.execute("SELECT count(*) FROM ingest_file").fetchone()[0],
                    db.execute("SELECT count(*) FROM optout_event").fetchone()[0])
        finally:
            db.close()

    def first_ingest(self, delay):
        """The first ingest into a new data directory, killed; then the server must
        refuse it clearly or serve it, and an ingest run again must make exactly
        the store an uninterrupted first ingest makes."""
        data = os.path.join(self.work, "first")
        shutil.rmtree(data, ignore_errors=True)
        argv = [os.path.join(self.bin, "carecount"), "ingest", "--quiet", "--data", data,
                "--key", self.keyfile, self.feeds]
        started = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killer = Killer(delay, p)
        _, err = p.communicate()
        self.ingest_elapsed = time.monotonic() - started
        killer.stop()
        if p.returncode == -signal.SIGKILL:
            self.kills["first-ingest"] += 1
        elif p.returncode != 0:
            raise Failure("first ingest exited %d: %s" % (p.returncode, err.decode().strip()))
        # the server refuses it clearly, or serves version 1
        self.serve_once(data, "an interrupted first ingest")
        # run again, to the end: the same store as a first ingest never interrupted
        again = self.run(["carecount", "ingest", "--quiet", "--data", data, "--key", self.keyfile,
                          self.feeds], check=False)
        if again.returncode != 0:
            self.fail("ingest after an interrupted first ingest exited %d: %s"
                      % (again.returncode, again.stderr.strip()))
            return
        db = sqlite3.connect(os.path.join(data, "state.db"))
        try:
            ok = db.execute("PRAGMA integrity_check").fetchall()
        finally:
            db.close()
        if ok != [("ok",)]:
            self.fail("integrity_check after an interrupted first ingest: %r" % ok)
        got = self.store_summary(data)
        if got != self.first_store:
            self.fail("an interrupted first ingest, run again, made %r, not %r"
                      % (got, self.first_store))
        snaps = [f for f in os.listdir(data) if f.startswith("store-")]
        if len(snaps) != 1:
            self.fail("after an interrupted first ingest and its re-run: %s" % ", ".join(snaps))
        # the server's first start creates its tables (audit log, accounts, ledger):
        # killed during it, the next start must serve
        self.serve_once(data, "a first server start", kill_after=self.rng.uniform(0, 0.1))
        if not self.serve_once(data, "a server started after a killed first start"):
            self.fail("the server did not serve after a killed first start")
        p = self.run(["carecount", "audit", "verify", "--data", data, "--key", self.keyfile],
                     check=False)
        if p.returncode != 0:
            self.fail("audit verify after a killed first start exited %d: %s"
                      % (p.returncode, (p.stdout + p.stderr).strip()))

    def serve_once(self, data, what, kill_after=None):
        """Starts carecountd on data: it serves store version 1 (ping), or refuses
        with a clear message and an exit status (never dies of a signal). With
        kill_after it is SIGKILLed then, wherever its start has got to. True when
        it served."""
        port_file = os.path.join(self.work, "first.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        d = subprocess.Popen([os.path.join(self.bin, "carecountd"), "--listen", "127.0.0.1:0",
                              "--port-file", port_file, "--data", data, "--key", self.keyfile,
                              "--codelists", os.path.join(self.feeds, "codelists")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kill_after is not None:
            killer = Killer(kill_after, d)
            self.wait_port(d, port_file)  # started, or killed first
            killer.stop()
            if d.poll() is None:
                d.kill()
            d.communicate()
            return False
        port = self.wait_port(d, port_file)
        if port is not None:
            client = Client(port)
            reply = client.call("ping")
            client.close()
            d.send_signal(signal.SIGTERM)
            d.communicate()
            if not reply["ok"] or reply.get("data_version") != 1:
                self.fail("the server of %s: %r" % (what, reply))
            return True
        _, derr = d.communicate()
        text = derr.decode()
        if d.returncode <= 0 or "cannot serve" not in text:
            self.fail("carecountd on %s exited %d: %s" % (what, d.returncode, text.strip()))
        return False

    def wait_port(self, d, port_file):
        deadline = time.monotonic() + 30
        while d.poll() is None:
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)
        return None

    def audit_top(self):
        db = self.db()
        try:
            return db.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0]
        finally:
            db.close()

    def stream(self, account, token, requests, window, killer):
        """Sends requests (op, fields, marker, on_ok) with up to `window` in
        flight while the killer may SIGKILL the server; every reply received
        is an audit record to find: (account, op, marker, outcome) after the
        audit seq the stream started from."""
        self.audit_from = self.audit_top()
        client = None
        pending = {}
        todo = iter(requests)
        try:
            client = Client(self.port)
            self.hello(client, account, token)
            self.audit_expect.append((account, "hello", None, "ok"))
            while True:
                while len(pending) < window:
                    item = next(todo, None)
                    if item is None:
                        break
                    op, fields, marker, on_ok = item
                    pending[client.send(op, **fields)] = item
                if not pending:
                    break
                reply = client.recv()
                op, fields, marker, on_ok = pending.pop(reply["id"])
                self.replies[(account, op)] += 1
                outcome = "ok" if reply["ok"] else reply["error"]["code"]
                self.audit_expect.append((account, op, marker, outcome))
                if reply["ok"]:
                    on_ok(reply)
                elif outcome not in ("INVAL", "BUSY", "NOTFOUND", "REFUSED"):
                    raise Failure("%s: %s" % (op, reply["error"]))
        except (ConnectionError, OSError):
            killer.stop()  # a kill under way has finished; none will start now
            if not killer.killed:
                raise Failure("the server closed the connection, and nobody killed it: %s"
                              % self.server_log_tail())
        finally:
            if client is not None:
                client.close()

    def optout_server(self, delay):
        """optout_register / optout_withdraw through the server, each for a
        different patient, the server killed mid-stream."""
        requests = []
        for nhs in self.rng.sample(self.patients, min(44, len(self.patients))):
            done = self.registered.get(nhs)
            if done and self.rng.random() < 0.5:
                op, action = "optout_withdraw", 2
                day = self.rng.choice(done) + self.rng.randrange(1, 400)
            else:
                op, action = "optout_register", 1
                day = self.rng.randrange(day_number("2019-01-01"), day_number("2025-12-31"))
            person = pseudonym(self.key, nhs)

            def on_ok(reply, nhs=nhs, person=person, day=day, action=action):
                self.optouts.add((person, 1, day, action))
                if action == 1:
                    self.registered.setdefault(nhs, []).append(day)
            date = (EPOCH + datetime.timedelta(days=day)).isoformat()
            requests.append((op, {"nhs_number": nhs, "type": "type1", "effective": date},
                             person.hex(), on_ok))
        killer = Killer(delay, self.server)
        try:
            self.stream("crash-practice", self.practice_token, requests, 4, killer)
        finally:
            killer.stop()
        if killer.killed:
            self.kills["optout-server"] += 1
            self.kill_server()
            self.start_server()

    def optout_commands(self, delay):
        """`carecount optout register|withdraw --data` one after another."""
        deadline = time.monotonic() + (delay if delay is not None else 1e9)
        for _ in range(6):
            nhs = self.rng.choice(self.all_nhs)
            kind = self.rng.choice(["type1", "ndop"])
            done = self.registered.get((nhs, kind))
            if done and self.rng.random() < 0.5:
                action, day = "withdraw", self.rng.choice(done) + self.rng.randrange(1, 400)
            else:
                action = "register"
                day = self.rng.randrange(day_number("2019-01-01"), day_number("2025-12-31"))
            date = (EPOCH + datetime.timedelta(days=day)).isoformat()
            p = subprocess.Popen([os.path.join(self.bin, "carecount"), "optout", action,
                                  "--data", self.data, "--key", self.keyfile, "--nhs-number", "-",
                                  "--type", kind, "--date", date, "--wait"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            if self.wait_or_kill(p, deadline, nhs + "\n"):
                self.kills["optout-command"] += 1
                return
            if p.returncode == 0:
                self.optouts.add((pseudonym(self.key, nhs), 1 if kind == "type1" else 2, day,
                                  1 if action == "register" else 2))
                if action == "register":
                    self.registered.setdefault((nhs, kind), []).append(day)
            elif p.returncode != 1:
                raise Failure("optout %s exited %d" % (action, p.returncode))

    def wait_or_kill(self, p, deadline, stdin=None):
        """Waits for p; SIGKILLs it at the deadline. True when it was killed."""
        if stdin is not None:
            try:
                p.stdin.write(stdin.encode())
                p.stdin.close()
            except BrokenPipeError:
                pass
        while True:
            left = deadline - time.monotonic()
            try:
                p.wait(timeout=max(0.0, min(left, 60)))
                if p.stderr:
                    p.stderr.read()
                    p.stderr.close()
                return False
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    if p.stderr:
                        p.stderr.close()
                    # a process that had finished before the signal landed
                    return p.returncode == -signal.SIGKILL

    def account_server(self, delay):
        """account_add, token_issue, token_revoke, account_disable over msgpack as
        an operator, one after another, the server killed mid-stream."""
        state = {}

        def added(reply, name):
            self.accounts[name] = False
            state[name] = []

        def issued(reply, name):
            self.tokens[token_selector(reply["token"])] = {"account": name, "revoked": False}
            state[name].append((reply["token_id"], token_selector(reply["token"])))

        def revoked(reply, selector):
            self.tokens[selector]["revoked"] = True

        def disabled(reply, name):
            self.accounts[name] = True

        def requests():
            for _ in range(3):
                self.next_account += 1
                name = "crash-srv-%d-%d" % (self.args.seed, self.next_account)
                role = self.rng.choice(["researcher", "planner", "practice", "dashboard"])
                fields = {"name": name, "role": role}
                if role == "practice":
                    fields["practice"] = self.practice
                yield ("account_add", fields, name, lambda r, n=name: added(r, n))
                if name not in state:
                    return
                for _ in range(2):
                    yield ("token_issue", {"account": name}, name, lambda r, n=name: issued(r, n))
                if state[name]:
                    token_id, selector = state[name][0]
                    yield ("token_revoke", {"token_id": token_id}, str(token_id),
                           lambda r, s=selector: revoked(r, s))
                yield ("account_disable", {"name": name}, name, lambda r, n=name: disabled(r, n))

        killer = Killer(delay, self.server)
        try:
            self.stream("crash-operator", self.operator_token, requests(), 1, killer)
        finally:
            killer.stop()
        if killer.killed:
            self.kills["account-server"] += 1
            self.kill_server()
            self.start_server()

    def op_account(self, delay):
        """account add, token issue, token revoke, account disable: one after another."""
        deadline = time.monotonic() + (delay if delay is not None else 1e9)
        self.next_account += 1
        name = "crash-acct-%d-%d" % (self.args.seed, self.next_account)
        steps = [("add", name), ("issue", name), ("issue", name), ("revoke", name),
                 ("disable", name)]
        for step, account in steps:
            if step == "add":
                role = self.rng.choice(["researcher", "planner", "practice"])
                argv = ["account", "add", account, "--role", role, "--data", self.data]
                if role == "practice":
                    argv[5:5] = ["--practice", self.practice]
            elif step == "issue":
                argv = ["token", "issue", account, "--data", self.data]
            elif step == "revoke":
                mine = [s for s, v in self.tokens.items() if v["account"] == account]
                if not mine:
                    continue
                db = self.db()
                try:
                    row = db.execute("SELECT id FROM account_token WHERE selector = ?",
                                     (mine[0],)).fetchone()
                finally:
                    db.close()
                argv = ["token", "revoke", str(row[0]), "--data", self.data]
            else:
                argv = ["account", "disable", account, "--data", self.data]
            p = subprocess.Popen([os.path.join(self.bin, "carecount")] + argv,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if self.wait_or_kill_out(p, deadline):
                self.kills["account"] += 1
                return
            if p.returncode != 0:
                raise Failure("%s exited %d: %s" % (" ".join(argv[:3]), p.returncode, p.out.strip()))
            if step == "add":
                self.accounts[account] = False
            elif step == "issue":
                token = next(w for w in p.out.split() if w.startswith("cct1."))
                self.tokens[token_selector(token)] = {"account": account, "revoked": False}
            elif step == "revoke":
                self.tokens[mine[0]]["revoked"] = True
            else:
                self.accounts[account] = True

    def wait_or_kill_out(self, p, deadline):
        left = deadline - time.monotonic()
        try:
            out, _ = p.communicate(timeout=max(0.0, min(left, 120)))
            p.out = out.decode()
            return False
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            out, _ = p.communicate()
            p.out = out.decode()
            return p.returncode == -signal.SIGKILL

    def count_marker(self, dated):
        """A date range and age range no request used before: the audit record's
        canonical query tells each request apart."""
        while True:
            # always holding 2023 (a condition of one example query is dated 2023)
            lo = self.rng.randrange(0, 49)
            hi = self.rng.randrange(59, 84)
            amin = self.rng.randrange(0, 60)
            amax = self.rng.randrange(amin, 121)
            marker = ("%04d-%02d" % (2019 + lo // 12, lo % 12 + 1),
                      "%04d-%02d" % (2019 + hi // 12, hi % 12 + 1), amin, amax)
            if not dated:  # the population measure counts persons at one date
                marker = (None, None, amin, amax)
            if marker not in self.markers_used:
                self.markers_used.add(marker)
                return marker

    def count_answered(self, reply):
        """An ok count, asked for the first time: the disclosure ledger has committed
        a new entry for it before the reply (queries/cc_ledger.c)."""
        self.ledger_expect += 1
        self.ledger_answers += 1

    def op_count(self, delay):
        """Count queries (each audited before its reply, each answer recorded in the
        disclosure ledger first), the server killed mid-stream."""
        db = self.db()
        try:
            self.ledger_from = db.execute("SELECT coalesce(max(id), 0) FROM ledger_entry"
                                          ).fetchone()[0]
        finally:
            db.close()
        requests = []
        for _ in range(15):
            query = json.loads(json.dumps(self.rng.choice(self.queries)))
            dated = query.get("measure") != "population"
            marker = self.count_marker(dated)
            filters = query.setdefault("filters", {})
            if dated:
                filters["date_range"] = {"from": marker[0], "to": marker[1]}
            filters["age"] = {"min": marker[2], "max": marker[3]}
            requests.append(("count", {"query": query}, marker, self.count_answered))
        killer = Killer(delay, self.server)
        try:
            self.stream("crash-researcher", self.researcher_token, requests, 3, killer)
        finally:
            killer.stop()
        if killer.killed:
            self.kills["count"] += 1
            self.kill_server()
            self.start_server()

    # ------------------------------------------------------------------ check
    def fail(self, what, lost=0):
        self.lost += lost
        self.failures.append("cycle %d: %s" % (self.cycles, what))
        if not self.quiet_failures:
            print("FAIL cycle %d: %s" % (self.cycles, what), file=sys.stderr, flush=True)

    def check(self, op):
        """The independent reader: sqlite3 and the file system, no carecount code."""
        # writer.lock is free once the writer is dead
        with open(os.path.join(self.data, "writer.lock"), "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                self.fail("writer.lock still held after %s" % op)
        db = self.db()
        try:
            ok = db.execute("PRAGMA integrity_check").fetchall()
            if ok != [("ok",)]:
                self.fail("integrity_check: %r" % ok)
            # opt-out events: every committed one, every row seen before unchanged
            rows = {r[0]: r for r in db.execute(
                "SELECT sequence, pseudonym, type, effective_day, action, practice_code, source,"
                " recorded_at FROM optout_event")}
            have = {(bytes(r[1]), r[2], r[3], r[4]) for r in rows.values()}
            missing = self.optouts - have
            if missing:
                self.fail("%d committed opt-out events missing" % len(missing), len(missing))
            for seq, row in self.optout_rows_seen.items():
                if rows.get(seq) != row:
                    self.fail("opt-out event %d changed or lost" % seq, 1)
            self.optout_rows_seen = rows
            # accounts and tokens
            accts = {r[0]: r[1] for r in db.execute("SELECT name, disabled_at FROM account")}
            for name, disabled in self.accounts.items():
                if name not in accts:
                    self.fail("committed account %s missing" % name, 1)
                elif disabled and accts[name] is None:
                    self.fail("committed disable of %s missing" % name, 1)
            toks = {bytes(r[0]): (r[1], r[2]) for r in db.execute(
                "SELECT t.selector, a.name, t.revoked_at FROM account_token t"
                " JOIN account a ON a.id = t.account_id")}
            for sel, info in self.tokens.items():
                if sel not in toks:
                    self.fail("committed token of %s missing" % info["account"], 1)
                elif toks[sel][0] != info["account"]:
                    self.fail("token of %s names another account" % info["account"], 1)
                elif info["revoked"] and toks[sel][1] is None:
                    self.fail("committed revocation of a token of %s missing" % info["account"], 1)
            # the audit log
            audit = {r[0]: bytes(r[1]) for r in db.execute("SELECT seq, hash FROM audit_log")}
            n, top = db.execute("SELECT count(*), coalesce(max(seq), 0) FROM audit_log").fetchone()
            if n != top:
                self.fail("audit seq has a gap: max %d, count %d" % (top, n))
            for seq, h in self.audit_seen.items():
                if audit.get(seq) != h:
                    self.fail("audit record %d changed or lost" % seq, 1)
            self.audit_seen = audit
            per = collections.Counter((r[0], r[1]) for r in db.execute(
                "SELECT account, op FROM audit_log"))
            # each reply of this cycle's stream has its own record
            found = collections.Counter(
                (r[0], r[1], audit_marker(r[1], r[2]), r[3]) for r in db.execute(
                    "SELECT account, op, request, outcome FROM audit_log WHERE seq > ?",
                    (self.audit_from,)))
            for key in self.audit_expect:
                if found[key] > 0:
                    found[key] -= 1
                else:
                    self.fail("the audit record of a reply (%s %s, %s) is missing"
                              % (key[0], key[1], key[3]), 1)
            self.audit_expect = []
            for key, got in self.replies.items():
                if per[key] < got:
                    self.fail("%d replies to %s/%s have no audit record" % (got - per[key], *key),
                              got - per[key])
            # the disclosure ledger: entries never lost, one per first-time answer
            ledger = {r[0]: (r[1], r[2], r[3]) for r in db.execute(
                "SELECT id, account, fingerprint, at_s FROM ledger_entry")}
            for lid, row in self.ledger_seen.items():
                if ledger.get(lid) != row:
                    self.fail("ledger entry %d changed or lost" % lid, 1)
            self.ledger_seen = ledger
            new = sum(1 for lid, row in ledger.items()
                      if lid > self.ledger_from and row[0] == self.researcher_id)
            if new < self.ledger_expect:
                self.fail("%d answered counts have no ledger entry" % (self.ledger_expect - new),
                          self.ledger_expect - new)
            self.ledger_expect = 0
            # committed ingests
            versions = {r[0]: r[1] for r in db.execute("SELECT version, file_name FROM store_version")}
            files = {r[0] for r in db.execute("SELECT content_hash FROM ingest_file")}
            for version, hashes in self.ingests:
                if version not in versions:
                    self.fail("committed store version %d missing" % version, 1)
                lost = [h for h in hashes if h not in files]
                if lost:
                    self.fail("%d committed feed files of version %d missing" % (len(lost), version),
                              len(lost))
            rejected = collections.defaultdict(collections.Counter)
            for v, name, n in db.execute(
                    "SELECT store_version, file_name, rows_rejected FROM ingest_file"):
                if n:
                    rejected[v][name] += n
            current = max(versions)
            current_file = versions[current]
            previous_file = versions.get(max([v for v in versions if v < current], default=0))
        finally:
            db.close()
        if not os.path.isfile(os.path.join(self.data, current_file)):
            self.fail("current snapshot %s missing" % current_file)
        litter = [f for f in os.listdir(self.data)
                  if f.startswith("store-") and f not in (current_file, previous_file)]
        self.max_litter = max(self.max_litter, len(litter))
        # each killed ingest may leave its own snapshot (.snap.tmp, or .snap renamed
        # but never made current); the next committed ingest removes them all
        if len(litter) > self.ingest_kills_since_commit:
            self.fail("%d stale snapshot files after %d killed ingests: %s"
                      % (len(litter), self.ingest_kills_since_commit, ", ".join(sorted(litter))))
        self.check_rejects(rejected, current)
        p = self.run(["carecount", "audit", "verify", "--data", self.data, "--key", self.keyfile],
                     check=False)
        if p.returncode != 0:
            self.fail("audit verify exited %d: %s" % (p.returncode, (p.stdout + p.stderr).strip()))
        # the server serves the current version
        try:
            client = Client(self.port)
            try:
                reply = client.call("ping")
                if not reply["ok"]:
                    self.fail("ping: %r" % reply)
                elif reply.get("data_version") != current:
                    self.fail("server serves version %r, state.db's current is %d"
                              % (reply.get("data_version"), current))
            finally:
                client.close()
        except OSError as e:
            self.fail("server does not answer ping: %s" % e)

    def check_rejects(self, rejected, current):
        """The rejects report of each version N (rejects/ingest-N.csv: file, line,
        reason) lists exactly the rows state.db says N rejected, per file; the
        one report beyond the current version may be a killed run's."""
        folder = os.path.join(self.data, "rejects")
        reports = {}
        for name in os.listdir(folder):
            if not (name.startswith("ingest-") and name.endswith(".csv")):
                self.fail("rejects/%s: not a report" % name)
                continue
            with open(os.path.join(folder, name), newline="") as f:
                rows = list(csv.reader(f))
            reports[int(name[7:-4])] = collections.Counter(r[0] for r in rows[1:] if r)
        beyond = [n for n in reports if n > current]
        if len(beyond) > 1 or any(n != current + 1 for n in beyond):
            self.fail("rejects reports of versions never made: %s" % sorted(beyond))
        for version in set(rejected) | {n for n in reports if n <= current}:
            want, got = rejected.get(version, {}), reports.get(version, {})
            if want != got:
                lost = sum(max(0, n - got.get(k, 0)) for k, n in want.items())
                self.fail("rejects report of version %d lists %s, state.db says %s"
                          % (version, dict(got), dict(want)), lost)

    # ------------------------------------------------------------------ loop
    def loop(self):
        t0 = time.monotonic()
        for i in range(self.args.cycles):
            self.cycles = i + 1
            if i and i % 100 == 0:
                self.calibrate()
            op = self.rng.choice(OPS)
            if op == "optout":
                op = "optout-command" if self.rng.random() < 0.25 else "optout-server"
            elif op == "ingest":
                op = self.rng.choice(["ingest", "ingest", "ingest+optout", "ingest+optout",
                                      "first-ingest"])
            elif op == "account" and self.rng.random() < 0.5:
                op = "account-server"
            self.per_op[op] += 1
            self.variant(op, self.delay(op.split("+")[0]))
            self.check(op)
            if not self.args.quiet and (self.cycles % 50 == 0 or self.cycles == self.args.cycles):
                self.log("cycle %d: %s; committed %s; kills %d; lost %d"
                         % (self.cycles, dict(self.per_op), self.committed(),
                            sum(self.kills.values()), self.lost))
        self.elapsed = time.monotonic() - t0

    def reader_self_test(self):
        """The reader is not vacuous: one made-up committed record of each kind
        (opt-out event, account, disable, token, revocation, the audit record
        of a reply, store version, ledger entries) must each be reported
        lost, and nothing else."""
        saved = (set(self.optouts), dict(self.accounts), {k: dict(v) for k, v in self.tokens.items()},
                 collections.Counter(self.replies), list(self.ingests), self.lost,
                 list(self.failures))
        self.optouts.add((b"\xff" * 16, 1, 1, 1))
        self.accounts["crash-never-made"] = False
        self.accounts[next(a for a, d in self.accounts.items() if not d)] = True
        self.tokens[b"\xee" * 12] = {"account": "crash-researcher", "revoked": False}
        self.tokens[next(s for s, v in self.tokens.items() if not v["revoked"])]["revoked"] = True
        self.audit_expect = [("crash-researcher", "count", ("2019-01", "2019-01", 200, 200), "ok")]
        self.ingests.append((10 ** 9, []))
        self.ledger_from = 0
        self.ledger_expect = 1 + sum(1 for r in self.ledger_seen.values()
                                     if r[0] == self.researcher_id)
        self.quiet_failures = True
        self.lost = 0
        self.failures = []
        self.check("self-test")
        got = self.lost
        (self.optouts, self.accounts, self.tokens, self.replies, self.ingests, self.lost,
         self.failures) = saved
        self.quiet_failures = False
        want = 8
        if got != want:
            self.fail("reader self-test: %d made-up records, %d reported lost" % (want, got))
        return got

    def committed(self):
        return {"optout_events": len(self.optouts), "accounts": len(self.accounts),
                "account_disables": sum(self.accounts.values()), "tokens": len(self.tokens),
                "token_revocations": sum(v["revoked"] for v in self.tokens.values()),
                "audited_replies": sum(self.replies.values()), "ingests": len(self.ingests),
                "ledger_entries": self.ledger_answers}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the build directory (carecount, carecountd)")
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--work", help="working directory (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--report", help="write the figures as JSON to this file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    made = args.work is None
    if made:
        args.work = tempfile.mkdtemp(prefix="cc-crash.")
    loop = Loop(args)
    status = 1
    try:
        loop.setup()
        loop.loop()
        self_test = loop.reader_self_test()
        committed = loop.committed()
        report = {"cycles": loop.cycles, "seed": args.seed, "patients": args.patients,
                  "operations": dict(loop.per_op), "kills": dict(loop.kills),
                  "committed": committed, "records_committed": sum(committed.values()),
                  "audit_records": len(loop.audit_seen), "records_lost": loop.lost,
                  "failures": loop.failures, "reader_self_test_lost": self_test, "max_stale_snapshots": loop.max_litter,
                  "seconds": round(loop.elapsed, 1),
                  "usual_durations_s": {k: round(v, 4) for k, v in loop.durations.items()}}
        print(json.dumps(report, indent=2))
        if args.report:
            with open(args.report, "w") as f:
                json.dump(report, f, indent=2)
        status = 0 if not loop.failures and loop.lost == 0 else 1
    except Failure as e:
        print("crash_loop: cycle %d: %s (work dir %s)" % (loop.cycles, e, args.work), file=sys.stderr)
        args.keep = True
    finally:
        loop.kill_server()
        if made and not args.keep and status == 0:
            shutil.rmtree(args.work, ignore_errors=True)
        elif status != 0:
            print("work dir kept: %s" % args.work, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
