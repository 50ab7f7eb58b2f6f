#!/usr/bin/env python3
"""The log-delivery experiment's cluster (scenarios/experiments/log-delivery.yaml): three NATS JetStream
servers in containers on a Docker network of their own, and `tarsier ship` in a container beside them,
shipping the files the scenario's agent writes with `logs/emit`. Each command prints progress on stderr and
ONE JSON object as its last line of stdout, which a scenario's `run: {record: ...}` reads.

  logdelivery.py up                    the images (scripts/image.sh), a network, three JetStream servers
                                       (one cluster, Raft), each with a volume; waits for a meta leader
  logdelivery.py down                  remove every container, volume and network `up` made
  logdelivery.py ship                  a new stream (3 replicas) and a shipper for it: the files named
                                       `logdelivery` in the emit directory, from their start
                                       -> {"stream"}
  logdelivery.py fault --how HOW --at S --hold S
                                       S seconds after it starts (while the agent emits), one fault, undone
                                       after the hold:
                                         none          nothing (the baseline)
                                         broker-kill   SIGKILL a server that does not lead the stream; start it again
                                         leader-kill   SIGKILL the stream's leader; start it again
                                         partition     cut the stream's leader off the network with net/partition
                                                       (an agent in its network namespace), for the hold
                                         shipper-kill  SIGKILL the shipper once it is in the middle of a file; start it again
                                         restart-all   SIGKILL the three servers and the shipper; start them all again
                                       -> {"target", "down_s"}
  logdelivery.py settle --count N      wait until every file is delivered (the shipper deletes it), then read
                                       the stream with `tarsier logs verify`
                                       -> {"emitted", "delivered", "lost", "holes", "duplicates",
                                           "out_of_order", "delay_p99_s", "delay_max_s", "drain_s"}

Everything runs on one engine and a network Docker makes (TARSIER_LOGDELIVERY names it and prefixes every
container, default tarsier-ld). The emit directory is the agent's `plugins.logs.dir` default
($TMPDIR/tarsier-emit), or LOGDELIVERY_DIR.
"""
import argparse
import json
import os
import shutil
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# The experiments' helpers (running docker, waiting, building the images) are stack.py's.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import build_images, docker, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = os.environ.get("TARSIER_LOGDELIVERY", "tarsier-ld")
NETWORK = PREFIX
BROKERS = ["n1", "n2", "n3"]
SHIPPER = f"{PREFIX}-shipper"
STATE = os.path.join(ROOT, ".cache", "logdelivery", PREFIX)
NAME = "logdelivery"
LABEL = f"tarsier.logdelivery={PREFIX}"
EMIT_DIR = os.environ.get("LOGDELIVERY_DIR") or os.path.join(tempfile.gettempdir(), "tarsier-emit")
# The partition's agent listens here in the server's namespace (NATS has 4222, 6222 and 8222).
AGENT_PORT = 18080


def log(message):
    print(f"logdelivery.py: {message}", file=sys.stderr, flush=True)


def container(broker):
    return f"{PREFIX}-{broker}"


def address(name):
    """The container's address on the experiment's network ('' when it is not on it)."""
    out = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name, check=False)
    try:
        return (json.loads(out).get(NETWORK) or {}).get("IPAddress", "")
    except json.JSONDecodeError:
        return ""


def monitor(broker, path):
    """A server's monitoring endpoint (`/jsz`, `/healthz`), or None when it does not answer."""
    ip = address(container(broker))
    if not ip:
        return None
    try:
        with urllib.request.urlopen(f"http://{ip}:8222{path}", timeout=2) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError):
        return None


def healthy(broker):
    answer = monitor(broker, "/healthz?js-enabled-only=true")
    return bool(answer) and answer.get("status") == "ok"


def meta_leader():
    for broker in BROKERS:
        answer = monitor(broker, "/jsz") or {}
        leader = (answer.get("meta_cluster") or {}).get("leader")
        if leader:
            return leader
    return None


def stream_leader(stream):
    """The server leading `stream`'s Raft group, asked of each server that answers."""
    for broker in BROKERS:
        answer = monitor(broker, "/jsz?accounts=true&streams=true") or {}
        for account in answer.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                leader = (detail.get("cluster") or {}).get("leader")
                if detail.get("name") == stream and leader:
                    return leader
    return None


def current_stream():
    with open(os.path.join(STATE, "stream")) as f:
        return f.read().strip()


def start_broker(broker):
    routes = ",".join(f"nats://{b}:6222" for b in BROKERS)
    docker("run", "-d", "--name", container(broker), "--label", LABEL, "--network", NETWORK, "--network-alias", broker,
           "-v", f"{container(broker)}:/data", "tarsier-nats:latest", "-js", "-sd", "/data", "-p", "4222", "-m", "8222",
           "-n", broker, "--cluster_name", PREFIX, "--cluster", "nats://0.0.0.0:6222", "--routes", routes)


def up(_args):
    started = time.monotonic()
    down(None, quiet=True)
    build_images()
    os.makedirs(STATE, exist_ok=True)
    docker("network", "create", "--label", LABEL, NETWORK)
    for broker in BROKERS:
        start_broker(broker)
    wait_until("three JetStream servers healthy", lambda: all(healthy(b) for b in BROKERS), limit=120)
    wait_until("a JetStream meta leader", lambda: meta_leader() is not None, limit=120)
    log(f"three JetStream servers up, meta leader {meta_leader()}")
    print(json.dumps({"brokers": len(BROKERS), "seconds": round(time.monotonic() - started, 2)}))


def down(_args, quiet=False):
    names = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
    if names:
        docker("rm", "-f", *names, check=False)
    volumes = docker("volume", "ls", "-q", "--filter", f"name={PREFIX}-", check=False).split()
    volumes = [v for v in volumes if v in {container(b) for b in BROKERS}]
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)
    if docker("network", "ls", "-q", "--filter", f"name=^{NETWORK}$", check=False):
        docker("network", "rm", NETWORK, check=False)
    clear_files()
    # The run's token, agent config and stream name: nothing of a run outlives its teardown.
    shutil.rmtree(STATE, ignore_errors=True)
    if not quiet:
        print(json.dumps({"removed": len(names) + len(volumes)}))


def clear_files():
    """The experiment's files in the emit directory (an earlier round's that were not delivered)."""
    if not os.path.isdir(EMIT_DIR):
        return
    for entry in os.listdir(EMIT_DIR):
        if entry.startswith(NAME + ".") or entry == ".ship-checkpoints.json":
            os.remove(os.path.join(EMIT_DIR, entry))


def pending_files():
    if not os.path.isdir(EMIT_DIR):
        return []
    return [e for e in os.listdir(EMIT_DIR) if e.startswith(NAME + ".") and ".jsonl" in e]


def ship(_args):
    docker("rm", "-f", SHIPPER, check=False)
    clear_files()
    os.makedirs(EMIT_DIR, mode=0o700, exist_ok=True)
    stream = f"LD_{time.strftime('%H%M%S')}_{secrets.token_hex(2)}"
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, "stream"), "w") as f:
        f.write(stream)
    urls = [arg for b in BROKERS for arg in ("--url", f"nats://{b}:4222")]
    # Root in the container: the agent writes the files 0600 as the host's user.
    docker("run", "-d", "--name", SHIPPER, "--label", LABEL, "--network", NETWORK, "--user", "0:0",
           "-v", f"{EMIT_DIR}:/logs", "tarsier:latest", "ship", "/logs", "--name", NAME, "--stream", stream,
           "--subject", f"tarsier.logdelivery.{stream}", "--replicas", "3", *urls)
    wait_until("the stream made by the shipper", lambda: stream_leader(stream) is not None, limit=60)
    log(f"shipping {EMIT_DIR}/{NAME}.* to stream {stream} (leader {stream_leader(stream)})")
    print(json.dumps({"stream": stream}))


def checkpoint_in_a_file():
    """(file, acked, size) of a file the shipper is in the middle of, or None."""
    try:
        with open(os.path.join(EMIT_DIR, ".ship-checkpoints.json")) as f:
            acked = json.load(f)
    except (OSError, ValueError):
        return None
    for name, offset in acked.items():
        for path in (os.path.join(EMIT_DIR, name), os.path.join(EMIT_DIR, name + ".open")):
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if 0 < offset < size:
                return name, offset, size
    return None


def partition(broker, hold):
    """Cuts `broker` off for `hold` s with net/partition, from an agent in its network namespace (the
    agent's own port stays open: the control plane is exempt); the seconds it held."""
    token = secrets.token_hex(16)
    os.makedirs(STATE, exist_ok=True)
    token_file, config = os.path.join(STATE, "token"), os.path.join(STATE, "agent.yaml")
    with open(token_file, "w") as f:
        f.write(token)
    with open(config, "w") as f:
        f.write("auth: {token_file: /etc/tarsier/token}\n")
    agent = f"{container(broker)}-agent"
    docker("rm", "-f", agent, check=False)
    docker("run", "-d", "--name", agent, "--label", LABEL, "--network", f"container:{container(broker)}",
           "--user", "0:0", "--cap-add", "NET_ADMIN", "-v", f"{token_file}:/etc/tarsier/token:ro",
           "-v", f"{config}:/etc/tarsier/agent.yaml:ro", "tarsier:latest", "agent",
           f"--listen=0.0.0.0:{AGENT_PORT}", f"--service-listen=0.0.0.0:{AGENT_PORT + 1}",
           "--config=/etc/tarsier/agent.yaml")
    ip = address(container(broker))

    def exec_partition():
        body = json.dumps({"command": "net/partition", "data": {"duration": f"{hold}s"}}).encode()
        request = urllib.request.Request(f"http://{ip}:{AGENT_PORT}/exec", data=body, method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=hold + 30) as answer:
            return json.loads(answer.read())

    def agent_up():
        try:
            with socket.create_connection((ip, AGENT_PORT), timeout=1):
                return True
        except OSError:
            return False

    wait_until("the partition's agent", agent_up, limit=60)
    # The command answers once the fault has ended by itself (its `duration`).
    answer = exec_partition()
    log(f"net/partition on {broker}: {json.dumps(answer)[:300]}")
    docker("rm", "-f", agent, check=False)
    if answer.get("status") != "ok":
        raise SystemExit(f"logdelivery.py: net/partition: {json.dumps(answer)[:500]}")
    return answer["result"]["held_ms"] / 1000


def fault(args):
    how, hold = args.how, args.hold
    if how == "none":
        print(json.dumps({"target": "", "down_s": 0}))
        return
    stream = current_stream()
    time.sleep(args.at)
    target = ""
    started = time.monotonic()
    if how in ("broker-kill", "leader-kill", "partition"):
        leader = stream_leader(stream)
        if leader is None:
            raise SystemExit(f"logdelivery.py: stream {stream} has no leader")
        target = leader if how != "broker-kill" else next(b for b in BROKERS if b != leader)
        log(f"{how}: {target} (the stream's leader is {leader})")
        if how == "partition":
            down_s = partition(target, hold)
        else:
            docker("kill", container(target))
            time.sleep(hold)
            docker("start", container(target))
            down_s = time.monotonic() - started
    elif how == "shipper-kill":
        wait_until("the shipper in the middle of a file", lambda: checkpoint_in_a_file() is not None, limit=60)
        name, offset, size = checkpoint_in_a_file()
        target = f"{name} at byte {offset} of {size}"
        docker("kill", "-s", "KILL", SHIPPER)
        log(f"shipper killed with SIGKILL in {target}")
        started = time.monotonic()
        time.sleep(hold)
        docker("start", SHIPPER)
        down_s = time.monotonic() - started
    elif how == "restart-all":
        target = "all"
        docker("kill", SHIPPER, *[container(b) for b in BROKERS])
        time.sleep(hold)
        for broker in BROKERS:
            docker("start", container(broker))
        docker("start", SHIPPER)
        down_s = time.monotonic() - started
    else:
        raise SystemExit(f"logdelivery.py: --how {how}: none, broker-kill, leader-kill, partition, shipper-kill or restart-all")
    wait_until("the servers healthy again", lambda: all(healthy(b) for b in BROKERS), limit=120)
    print(json.dumps({"target": target, "down_s": round(down_s, 2)}))


def settle(args):
    stream = current_stream()
    started = time.monotonic()
    wait_until("every file delivered", lambda: not pending_files(), limit=args.timeout)
    drain_s = time.monotonic() - started
    urls = [arg for b in BROKERS for arg in ("--url", f"nats://{b}:4222")]
    # Run here rather than through docker(): a verify that fails says why on stderr, which a failure must show
    # (CI once read "tarsier logs verify:" and nothing after it).
    done = subprocess.run(["docker", "run", "--rm", "--network", NETWORK, "tarsier:latest", "logs", "verify", "--json",
                           "--timeout", f"{args.timeout}s", "--stream", stream, *urls],
                          capture_output=True, text=True, timeout=args.timeout + 60)
    try:
        boots = json.loads(done.stdout)["boots"]
    except (ValueError, KeyError):
        said = (done.stderr.strip() + "\n" + done.stdout.strip()).strip()
        raise SystemExit(f"logdelivery.py: tarsier logs verify exited {done.returncode}: {said[-500:]}")
    received = sum(b["received"] for b in boots)
    duplicates = sum(b["duplicates"] for b in boots)
    delivered = received - duplicates
    seconds = lambda key: max((b[key] or 0 for b in boots), default=0) / 1000
    result = {
        "emitted": args.count,
        "delivered": delivered,
        "lost": args.count - delivered,
        "holes": sum(b["missing"] for b in boots),
        "duplicates": duplicates,
        "out_of_order": sum(b["out_of_order"] for b in boots),
        "delay_p99_s": seconds("delay_ms_p99"),
        "delay_max_s": seconds("delay_ms_max"),
        "drain_s": round(drain_s, 2),
        "boots": len(boots),
    }
    log(f"stream {stream}: {json.dumps(result)}")
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up").set_defaults(run=up)
    commands.add_parser("down").set_defaults(run=down)
    commands.add_parser("ship").set_defaults(run=ship)
    f = commands.add_parser("fault")
    f.add_argument("--how", required=True)
    f.add_argument("--at", type=float, default=10)
    f.add_argument("--hold", type=float, default=10)
    f.set_defaults(run=fault)
    s = commands.add_parser("settle")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--timeout", type=int, default=600)
    s.set_defaults(run=settle)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
