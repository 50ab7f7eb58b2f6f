#!/usr/bin/env python3
"""Regenerates link/hot-symbols.txt: the functions an agent runs, in two groups, for the linker to lay out first.

Why: the kernel maps a binary's text in large page-cache folios, so an idle agent's RSS is mostly the pages of
text it touched once. Functions that start and idle an agent sit scattered among 8 MB of cold code (the CLI, the
scenario runner, the plugins' commands); laid out together they fill few pages (docs/performance.md).

How: runs `target/release/tarsier agent` under valgrind's callgrind (Debian's `valgrind` package), which lists
every function executed. Group 1 is start, idle, /health, /metrics and the service routes; a callgrind dump ends
it. Group 2 is what the first /exec calls add (JSON and YAML, a sleep and a dedupe wave over a local peer). The
file holds mangled names as in the binary's symbol table; names that no longer exist are ignored by the linker,
so a stale file costs memory, never correctness. Run after large changes or a Rust upgrade (it builds the
release binary first): scripts/hot-symbols.py
"""
import glob
import os
import shutil
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/tarsier")
OUT = os.path.join(ROOT, "link/hot-symbols.txt")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, content_type="application/json", within=60.0):
    """Bounded in time: under callgrind the agent is ~50x slower, so each call retries for up to `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type})
            with urllib.request.urlopen(req, timeout=within) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            return e.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def executed_functions(path):
    """Every function name of a callgrind output file (fn= and cfn= lines, with name compression)."""
    names, ids = set(), {}
    pattern = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")
    with open(path) as f:
        for line in f:
            m = pattern.match(line.rstrip("\n"))
            if not m:
                continue
            if m.group(2):
                ids[m.group(1)] = m.group(2)
            names.add(ids.get(m.group(1), ""))
    names.discard("")
    return names


def binary_symbols():
    out = subprocess.run(["nm", "--defined-only", BIN], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[1:2] and line.split()[1] in "tTwW"}


def main():
    # Built here, not taken as found: `cargo bench` (benches/run.sh's criterion sections) writes a bench-profile
    # binary to the same path, whose generic functions carry other name hashes than the release build's, and a
    # list made from it matched 600 of 1,830 names (idle RSS 12.2 MiB where the right list gives 6.8).
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "tarsier"], cwd=ROOT, check=True)
    if shutil.which("valgrind") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True)
    work = tempfile.mkdtemp(prefix="tarsier-hot-")
    public, service, peer_public, peer_service = (free_port() for _ in range(4))
    out = os.path.join(work, "callgrind.out")
    env = {**os.environ, "TARSIER_LOG": "warn"}
    peer = subprocess.Popen([BIN, "agent", f"--listen=127.0.0.1:{peer_public}", f"--service-listen=127.0.0.1:{peer_service}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}", BIN, "agent",
                              f"--listen=127.0.0.1:{public}", f"--service-listen=127.0.0.1:{service}", f"--peers=127.0.0.1:{peer_public}"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        svc = f"http://127.0.0.1:{service}"
        for path in ("/health", "/metrics", "/health", "/commands", "/runtime", "/peers", "/metrics"):
            request("GET", svc + path)
        time.sleep(6)  # past the first ticks of the agent's timers (heap trim look, peer refresh)
        subprocess.run(["callgrind_control", "--dump", str(agent.pid)], check=True, capture_output=True, timeout=60)
        exec_url = f"http://127.0.0.1:{public}/exec"
        request("POST", exec_url, b'{"command": "sleep/sleep", "data": {"duration": "0s"}}')
        request("POST", exec_url, b"command: sleep/sleep\ndata:\n  duration: 0s\n", "application/yaml")
        request("POST", exec_url, b'{"command": "sleep/sleep", "data": {"duration": "0s"}, "wave": {"remain": 1, "dedupe": true}}')
        request("POST", exec_url, b'{"command": "nope"}')
        request("GET", f"http://127.0.0.1:{public}/jobs")
        time.sleep(2)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=120)
        peer.send_signal(signal.SIGTERM)
        peer.wait(timeout=30)
    dumps = sorted(glob.glob(out + "*"), key=os.path.getmtime)
    if len(dumps) < 2:
        sys.exit(f"expected two callgrind dumps in {work}, found {dumps}")
    ours = binary_symbols()
    idle = sorted(executed_functions(dumps[0]) & ours)
    serving = sorted(set().union(*(executed_functions(d) for d in dumps[1:])) & ours - set(idle))
    with open(OUT, "w") as f:
        f.write("\n".join(idle + serving) + "\n")
    print(f"{OUT}: {len(idle)} start/idle functions, then {len(serving)} more for /exec ({len(ours)} in the binary)")


if __name__ == "__main__":
    main()
