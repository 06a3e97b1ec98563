#!/usr/bin/python3
"""Runs every command example in the guides, so that they cannot go stale.

Every line of every ```sh block in the files below is run, in order, with
the real `carecount` and `carecountd` on a small generated data set, and
must exit 0 (or the status a trailing `# exit N` comment gives). A line
that is a synopsis (`[--option]`, `A|B` alternatives) belongs in a ```text
block and fails the test here. The guides' placeholders are bound to real
paths:

  DATA       the data directory         KEY        the key file
  FEEDS_DIR  the generated feeds        CODELISTS  the feeds' codelists
  /etc/carecount/, /incoming/   a private folder, the feeds
  ~          a private home (the researcher's token is ~/.carecount/token)
  7433       a free loopback port (also $CARECOUNT_PORT)

`carecountd ...` lines start a server in the background (stopped with
SIGTERM at the end, and it must exit 0). `bash scripts/...` lines are the
test and demo commands themselves and are not run from here. Between the
operator's guide and the researcher's, the runner gives the researcher the
token the operator issued (copies rita.token to ~/.carecount/token), as an
operator would hand it over. The example files the guides name
(my-query.json, query.json, my-comparison.json) are copied from examples/.

usage: run_examples.py BIN_DIR SOURCE_DIR
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

FILES = [
    "docs/data-formats.md",
    "docs/operator-guide.md",
    "docs/researcher-guide.md",
    "docs/query-model.md",
    "README.md",
]

SYNOPSIS = re.compile(r"\s\[-|\]\s|\s\[[A-Z]+\]|\w\|\w+\s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh_blocks(path):
    """(line number, command) of every line of every ```sh block, with
    backslash continuations joined."""
    out, inside, pending, start = [], False, "", 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("```"):
                inside = line.strip() == "```sh"
                continue
            if not inside:
                continue
            if not pending:
                start = n
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            text = (pending + line).strip()
            pending = ""
            if text:
                out.append((start, text))
    return out


def main():
    bin_dir, source = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    root = tempfile.mkdtemp(prefix="cc-docs-")
    os.chmod(root, 0o700)
    home, work = os.path.join(root, "home"), os.path.join(root, "work")
    etc = os.path.join(root, "etc", "carecount")
    feeds, data = os.path.join(root, "feeds"), os.path.join(root, "data")
    for d in (home, work, etc):
        os.makedirs(d, mode=0o700)
    port = free_port()
    env = dict(os.environ, HOME=home, PATH=bin_dir + ":" + os.environ["PATH"],
               CARECOUNT_PORT=str(port))
    for k in ("CARECOUNT_TOKEN", "CARECOUNT_TOKEN_FILE", "CARECOUNT_KEY", "CARECOUNT_HOST"):
        env.pop(k, None)
    key = os.path.join(etc, "carecount.key")
    binds = [("FEEDS_DIR", feeds), ("CODELISTS", os.path.join(feeds, "codelists")),
             ("DATA", data), ("KEY", key)]

    subprocess.run([os.path.join(bin_dir, "carecount"), "generate", "--patients", "100000",
                    "--seed", "1", "--out", feeds, "--quiet"], check=True, env=env)
    shutil.copy(os.path.join(source, "examples/queries/diabetes_by_region.json"),
                os.path.join(work, "my-query.json"))
    shutil.copy(os.path.join(source, "examples/queries/diabetes_by_region.json"),
                os.path.join(work, "query.json"))
    shutil.copy(os.path.join(source, "examples/comparisons/diabetes_by_icb.json"),
                os.path.join(work, "my-comparison.json"))
    # an NHS number from the feeds, on standard input for `--nhs-number -`
    with open(os.path.join(feeds, "gp_registrations.csv")) as f:
        f.readline()
        nhs = f.readline().split(",")[0]

    def bind(text):
        text = text.replace("~/", home + "/").replace("/etc/carecount/", etc + "/")
        text = text.replace("/incoming/", feeds + "/").replace("7433", str(port))
        for word, value in binds:
            text = re.sub(r"(?<![\w/.-])" + word + r"(?![\w-])", value, text)
        return text

    servers, failures, ran, skipped = [], [], 0, 0
    try:
        ran, skipped = run_files(source, work, home, env, nhs, bind, servers, failures)
    finally:
        stop_servers(servers, failures)
    print(f"docs examples: {ran} commands run, {skipped} test/demo commands not run, "
          f"{len(failures)} failures")
    for f in failures:
        print("  " + f)
    if not failures:
        shutil.rmtree(root)
    else:
        print(f"  (left in {root})")
    return 1 if failures or ran == 0 else 0


def run_files(source, work, home, env, nhs, bind, servers, failures):
    ran = skipped = 0
    root = os.path.dirname(work)
    for rel in FILES:
        path = os.path.join(source, rel)
        commands = sh_blocks(path)
        if not commands:
            failures.append(f"{rel}: no ```sh examples (remove it from FILES?)")
        if rel == "docs/researcher-guide.md" and not os.path.exists(
                os.path.join(work, "rita.token")):
            failures.append("the operator's guide issued no rita.token for the researcher")
        elif rel == "docs/researcher-guide.md":
            os.makedirs(os.path.join(home, ".carecount"), mode=0o700, exist_ok=True)
            shutil.copy(os.path.join(work, "rita.token"),
                        os.path.join(home, ".carecount", "token"))
            os.chmod(os.path.join(home, ".carecount", "token"), 0o600)
        for line, text in commands:
            where = f"{rel}:{line}"
            expected = 0
            m = re.search(r"#\s*exit (\d+)\s*$", text)
            if m:
                expected = int(m.group(1))
            command = re.sub(r"(^|\s)#.*$", "", text).strip()
            if SYNOPSIS.search(" " + command + " "):
                failures.append(f"{where}: a synopsis in an sh block (move it to a text "
                                f"block): {command}")
                continue
            if command.startswith("bash scripts/"):
                skipped += 1
                continue
            command = bind(command)
            if command.startswith("carecountd "):
                log = open(os.path.join(root, f"carecountd-{len(servers)}.log"), "w")
                proc = subprocess.Popen(shlex.split(command), cwd=work, env=env,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                servers.append((where, proc))
                for _ in range(200):
                    probe = subprocess.run(["carecount", "ping"], env=env, cwd=work,
                                           capture_output=True)
                    if probe.returncode == 0 or proc.poll() is not None:
                        break
                    time.sleep(0.05)
                if proc.poll() is not None:
                    failures.append(f"{where}: the server exited with {proc.returncode}")
                ran += 1
                continue
            result = subprocess.run(command, shell=True, cwd=work, env=env, input=nhs + "\n",
                                    capture_output=True, text=True, timeout=120)
            ran += 1
            if result.returncode != expected:
                tail = (result.stdout + result.stderr).strip().splitlines()[-6:]
                failures.append(f"{where}: exit {result.returncode}, expected {expected}: "
                                f"{text}\n      " + "\n      ".join(tail))
    return ran, skipped


def stop_servers(servers, failures):
    for where, proc in servers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            failures.append(f"{where}: the server exited with {proc.returncode}")


if __name__ == "__main__":
    sys.exit(main())
