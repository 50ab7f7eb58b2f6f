#!/usr/bin/env python3
"""The experiment stack (deploy/stack.yaml) on Docker Swarm mode, driven by the `run:` steps of
scenarios/experiments/. Each measuring command prints progress on stderr and ONE JSON object as its last
line of stdout, which a scenario's `run: {values: ..., record: ...}` reads.

  stack.py up [SERVICE UNDER TEST]   init a one-node swarm if the engine has none (remembered, so `down`
                                     leaves it again), build the images, deploy, wait until all is ready
      --image IMAGE                  the service under test (default tarsier:latest, tarsier's agent);
                                     any image the engine has (scripts/image.sh makes tarsier-busybox:latest)
      --command "ARGS"               its arguments (default: the image's own CMD; tarsier's agent flags)
      --port N                       the port the load balancer sends everything to (default 8080)
      --health-port N                the port it sends /health to (default: --port; tarsier's 8081)
      --health CHECK                 `default` (tarsier's probe, or the image's own HEALTHCHECK), `none`, or a
                                     command run in the container ("wget -q -O /dev/null http://127.0.0.1:8080/")
      --ready-path PATH              without a health check a replica is ready at its first 2xx answer to
                                     GET PATH on the health port (default /health), asked from the stack's
                                     network; every time below is then taken from that clock instead
      --ship-logs                    a JetStream server (`nats`) in the stack, and every tarsier agent of
                                     it writing its activity log and shipping it there (docs/logs.md)
  stack.py down                      remove the stack; leave the swarm if `up` made it
  stack.py token                     make the swarm token deploy/.token if there is none; print its path
                                     (for `tarsier scenario run --token-file`, read before `up` runs)
  stack.py scale SERVICE N           scale, wait until exactly N tasks are healthy
                                     -> {"replicas": N, "seconds": time until the last one was healthy}
  stack.py kill SERVICE --how docker-kill|segfault [--times 5]
                                     kill one task at a time; each time wait for its replacement
                                     -> {"kills", "median_s", "max_s", "min_s"}: kill -> replacement healthy
  stack.py update SERVICE            a rolling update (`docker service update --force`, the service's
                                     update_config) -> {"seconds", "replaced", "ready_median_s", "ready_max_s"}
  stack.py health SERVICE --interval 2 --timeout 2 --retries 3
                                     set the service's health check (a rolling update), wait until it is done
                                     -> {"interval_s", "timeout_s", "retries", "seconds"}
  stack.py hang SERVICE              make one task hang (faults/deadlock with block_health: alive, not
                                     answering); wait until Swarm has replaced it with a healthy one
                                     -> {"detect_s": fault -> marked unhealthy, "stopped_s": -> the hung one
                                     stopped, "replaced_s": -> a replacement healthy}
  stack.py fail-node SERVICE --how cut|halt [--hold 120]
                                     (with scripts/cluster.sh's workers) the worker running most of the
                                     service's replicas fails: its link cut, or its engine and containers
                                     frozen; undone after -> {"down_s": fault -> the manager marks the node
                                     down, "scheduled_s": -> a replacement placed on a live node,
                                     "first_running_s", "all_running_s": -> replacements running (healthy)}
  stack.py state --volume none|local --how kill|move [--records 1000]
                                     a database (tarsier-redis:latest, or --image with --write-cmd,
                                     --write-line, --count-cmd) gets numbered records, then its container is
                                     killed or (with two workers) its node drained; the records the new
                                     container finds -> {"written", "left", "lost", "moved", "seconds"}
  stack.py net-path --path host|bridge|overlay|node|overlay-node [--concurrency 16 --seconds 10]
                                     one HTTP service and iperf3 server reached over that path from a client
                                     container (node, overlay-node: on another node of scripts/cluster.sh)
                                     -> {"req_per_s", "p50_ms", "p99_ms", "gbit_per_s"}
  stack.py load SERVICE --ram 64MiB --cpu-load 50 --seconds 10
                                     in every task: hold the memory, then spin one thread at the load
                                     -> {"containers", "cpu_share_mean", "cpu_share_min", "cpu_share_max"}:
                                     the CPU fraction each got while asking for cpu-load percent of a core;
                                     "cpu_asked_mean", "cpu_got_mean": its threads' time runnable (running
                                     or waiting for a CPU) and running, per second (/proc/TID/schedstat);
                                     "memory_per_container_mib" (cgroup usage), "host_memory_used_mib",
                                     "host_memory_added_mib" (MemTotal - MemAvailable, and its growth)

Services: backend and bystander (the service under test, written by `up` into .cache/stack/sut.json), density
and lb (deploy/stack.yaml). TARSIER_STACK names the stack (default tarsier-exp). Times come from the engine's
own events (create, health_status, die), streamed while the step runs, not from polling; a service with no
health check is ready at its first answer (`--ready-path`), and every measuring command says which clock it
used (`"clock": "health check"` or `"first answer"`).
On Kubernetes the same steps are kubectl commands; docs/experiments.md lists them.
"""

import argparse
import atexit
import datetime
import glob
import hashlib
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.environ.get("TARSIER_STACK", "tarsier-exp")
LB = "http://127.0.0.1:18090"
MADE_SWARM = os.path.join(ROOT, ".cache", "stack-made-swarm")
TOKEN = os.path.join(ROOT, "deploy", ".token")
# Every wait is bounded: a stack that does not settle in this long is reported, not waited for.
SETTLE_S = 180


def log(text):
    print(f"stack.py: {text}", file=sys.stderr, flush=True)


def docker(*args, check=True, stdin=None, timeout=120):
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise SystemExit(f"stack.py: docker {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def service_name(service):
    return f"{STACK}_{service}"


def containers(service, healthy=False):
    """Ids of the service's running containers (only those whose health check passes, with healthy)."""
    args = ["ps", "-q", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={service_name(service)}",
            "--filter", "status=running"]
    if healthy:
        args += ["--filter", "health=healthy"]
    return set(docker(*args).split())


def desired(service):
    return int(docker("service", "inspect", "-f", "{{.Spec.Mode.Replicated.Replicas}}", service_name(service)))


def wait_until(what, test, limit=SETTLE_S, every=0.1):
    deadline = time.monotonic() + limit
    while True:
        value = test()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"stack.py: {what}: not within {limit} s")
        time.sleep(every)


class EngineEvents:
    """The engine's create and health events of a service's containers, streamed while a step runs. Streamed,
    not asked for afterwards: the engine keeps only its last 256 events, and every health check (a `docker
    exec`) adds three, so with a few dozen containers a query after the fact finds the start gone."""

    def __init__(self, service):
        self.events = []
        self.process = subprocess.Popen(
            ["docker", "events", "--filter", "type=container",
             "--filter", f"label=com.docker.swarm.service.name={service_name(service)}",
             "--filter", "event=create", "--filter", "event=health_status", "--filter", "event=die",
             "--format", "{{json .}}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # A step that fails half-way exits through SystemExit: the stream goes with it.
        atexit.register(self.process.kill)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # The stream starts when the engine has it: a moment, taken before the step begins.
        time.sleep(0.3)

    def _read(self):
        for line in self.process.stdout:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.events.append((entry.get("status", ""), entry["id"], entry["timeNano"] / 1e9))

    def stop(self):
        time.sleep(0.3)  # the last events still on their way
        self.process.terminate()
        self.process.wait(timeout=10)
        self.reader.join(timeout=5)

    def created(self):
        return {cid: at for status, cid, at in self.events if status == "create"}

    def first(self, cid, status):
        """When `cid` first had `status` (`die`, `health_status: unhealthy`), or None."""
        return next((at for st, c, at in self.events if c == cid and st == status), None)

    def first_healthy(self):
        """When each container first turned healthy: {id: wall-clock seconds}."""
        times = {}
        for status, cid, at in self.events:
            if status.endswith(": healthy"):
                times.setdefault(cid, at)
        return times


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


# The service under test: what `up` was given, kept for the steps after it.
STATE = os.path.join(ROOT, ".cache", "stack")
SPEC_FILE = os.path.join(STATE, "spec.json")
SUT_SERVICES = ("backend", "bystander")
TARSIER_IMAGE = "tarsier:latest"
REGISTRY_IMAGE = "tarsier-registry:latest"
AGENT_COMMAND = ["agent", "--listen=0.0.0.0:8080", "--service-listen=0.0.0.0:8081",
                 "--token-file=/run/secrets/tarsier_token", "--max-ram=256MiB", "--log-format=json"]
# Each role's health check timing, whatever the check runs. The backend's is tolerant: a replica at its CPU
# cap answers late, and its probe (a process in the same capped cgroup) starts late. With 2 s and 3 retries
# one saturated replica was marked unhealthy within 30 s, left Docker's DNS, and nginx answered 502 to 25 of
# 600 requests; 5 s and 10 retries keep it in service, and a replica that really stops answering is out
# after about 10 s. Ready means the check passes: Docker's DNS gives a task's address under the service's
# name only once it is healthy.
CHECK_TIMING = {
    "backend": {"interval": "1s", "timeout": "5s", "retries": 10, "start_period": "10s", "probe": "4s"},
    "bystander": {"interval": "1s", "timeout": "2s", "retries": 3, "start_period": "10s", "probe": "1s"},
    "provisioned": {"interval": "1s", "timeout": "2s", "retries": 3, "start_period": "10s", "probe": "1s"},
}
DEPLOY = {
    "backend": {
        "endpoint_mode": "dnsrr",
        "replicas": 2,
        "restart_policy": {"condition": "any", "delay": "0s", "window": "0s"},
        # A rolling update replaces one task at a time, starting the new one before stopping the old, and
        # rolls back if a new task fails its health check.
        "update_config": {"parallelism": 1, "delay": "1s", "order": "start-first", "failure_action": "rollback",
                          "monitor": "5s"},
        "rollback_config": {"parallelism": 1, "order": "start-first"},
        "resources": {"limits": {"cpus": os.environ.get("BACKEND_CPUS", "0.25"), "memory": "512M"}},
    },
    "bystander": {"endpoint_mode": "dnsrr", "replicas": 1, "restart_policy": {"condition": "any", "delay": "0s"}},
    # provisioning's service: made with no task, then scaled from 0 to N while it is timed.
    "provisioned": {"endpoint_mode": "dnsrr", "replicas": 0, "restart_policy": {"condition": "any", "delay": "0s"}},
}


def resolve_spec(args):
    """The service under test as `up` deploys it; `health` is `tarsier` (its probe), `image` (the image's
    own HEALTHCHECK), `none`, or the command a check runs."""
    tarsier = args.image == TARSIER_IMAGE
    if docker("image", "inspect", args.image, check=False, timeout=30) == "":
        raise SystemExit(f"stack.py: --image {args.image}: the engine has no such image (nothing is pulled; "
                         "scripts/image.sh makes tarsier:latest and tarsier-busybox:latest)")
    port = args.port or 8080
    if args.health == "none":
        health = "none"
    elif args.health == "default":
        own = docker("image", "inspect", "-f", "{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}",
                     args.image)
        health = "tarsier" if tarsier else ("image" if own and own != '["NONE"]' else "none")
    else:
        health = shlex.split(args.health)
        if not health:
            raise SystemExit("stack.py: --health: give default, none, or a command")
    return {
        "image": args.image,
        "tarsier": tarsier,
        "command": shlex.split(args.command or "") or (AGENT_COMMAND if tarsier else []),
        "port": port,
        "health_port": args.health_port or (8081 if tarsier else port),
        "health": health,
        "ready_path": args.ready_path,
    }


def spec():
    """What `up` deployed as the service under test (tarsier's agent if `up` has not run since `down`)."""
    try:
        with open(SPEC_FILE) as f:
            return json.load(f)
    except OSError:
        return {"image": TARSIER_IMAGE, "tarsier": True, "command": AGENT_COMMAND, "port": 8080,
                "health_port": 8081, "health": "tarsier", "ready_path": "/health"}


def checked(service):
    """Whether the service has a health check to be timed by (density always: it is tarsier's)."""
    return service not in SUT_SERVICES or spec()["health"] != "none"


def clock(service):
    return "health check" if checked(service) else "first answer"


def sut_service(sut, role):
    """The compose service of the service under test in one role (backend, bystander, provisioned)."""
    service = {"image": sut["image"], "networks": ["experiment"], "deploy": DEPLOY[role]}
    if sut["command"]:
        service["command"] = sut["command"]
    if sut["tarsier"]:
        # Only tarsier's agents get the swarm token: a service that is not tarsier is a stranger.
        service["secrets"] = ["tarsier_token"]
    timing = CHECK_TIMING[role]
    check = {key: timing[key] for key in ("interval", "timeout", "retries", "start_period")}
    if sut["health"] == "tarsier":
        service["healthcheck"] = {**check, "test": ["CMD", "/usr/local/bin/tarsier", "probe",
                                                    f"--timeout={timing['probe']}", "http://127.0.0.1:8081/health"]}
    elif sut["health"] == "none":
        service["healthcheck"] = {"disable": True}
    elif isinstance(sut["health"], list):
        service["healthcheck"] = {**check, "test": ["CMD", *sut["health"]]}
    if role in ("backend", "provisioned") and workers():
        # On a multi-node cluster the service under test runs on the workers (what node-failure fails);
        # the load balancer and the bystander stay on this engine, the manager.
        service["deploy"] = {**service["deploy"], "placement": {"constraints": ["node.role == worker"]}}
    elif role == "bystander":
        service["deploy"] = {**service["deploy"], "placement": {"constraints": ["node.role == manager"]}}
    return service


def sut_compose(sut):
    """The compose file of the service under test (`backend` and `bystander`), deployed with deploy/stack.yaml,
    and the load balancer's config with the service's ports in it."""
    with open(os.path.join(ROOT, "deploy", "nginx", "nginx.conf")) as f:
        conf = f.read()
    conf = re.sub(r":\d+;(\s*# port)$", f":{sut['port']};\\1", conf, flags=re.M)
    conf = re.sub(r":\d+;(\s*# health port)$", f":{sut['health_port']};\\1", conf, flags=re.M)
    conf_path = os.path.join(STATE, "nginx.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    services = {role: sut_service(sut, role) for role in SUT_SERVICES}
    # Swarm configs cannot change: one per content, so `up` with other ports is a new config, not an error.
    digest = hashlib.sha256(conf.encode()).hexdigest()[:12]
    return {"version": "3.8", "services": services,
            "configs": {"nginx_conf": {"file": conf_path, "name": f"{STACK}_nginx_{digest}"}}}


# Run inside the stack's network (the load balancer's namespace): for each `ID URL LIMIT` line read, asks the
# URL every 50 ms until a 2xx answer (then prints `ID TIME`) or LIMIT seconds.
PROBER = r"""
import sys, threading, time, urllib.request
said = threading.Lock()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def watch(cid, url, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=1) as answer:
                if 200 <= answer.status < 300:
                    with said:
                        print(cid, repr(time.time()), flush=True)
                    return
        except Exception:
            pass
        time.sleep(0.05)
for line in sys.stdin:
    cid, url, limit = line.split()
    threading.Thread(target=watch, args=(cid, url, float(limit)), daemon=True).start()
"""


class FirstAnswers:
    """For a service under test with no health check: when each of its containers first answered GET
    ready_path on its health port with a 2xx, asked from inside the stack's network (the load balancer's
    network namespace, entered with nsenter: root only). Its resolution is the 50 ms between two asks."""

    def __init__(self, service):
        sut = spec()
        self.service, self.port, self.path = service, sut["health_port"], sut["ready_path"]
        lb = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service_name('lb')}",
                    "--filter", "status=running").split()
        if not lb:
            raise SystemExit("stack.py: the load balancer is not running: `stack.py up` first")
        if os.geteuid() != 0:
            raise SystemExit("stack.py: a service without a health check is timed at its first answer, asked "
                             "from inside the stack's network with nsenter: that needs root (or give --health)")
        pid = docker("inspect", "-f", "{{.State.Pid}}", lb[0])
        self.process = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-u", "-c", PROBER],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        atexit.register(self.process.kill)
        self.asked, self.answers, self.done = set(), {}, threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            cid, at = line.split()
            self.answers.setdefault(cid, float(at))

    def _watch(self):
        network = f"{STACK}_experiment"
        while not self.done.is_set():
            for cid in containers(self.service) - self.asked:
                ip = docker("inspect", "-f", f'{{{{with index .NetworkSettings.Networks "{network}"}}}}'
                            f"{{{{.IPAddress}}}}{{{{end}}}}", cid, check=False)
                if ip:
                    self.asked.add(cid)
                    self.process.stdin.write(f"{cid} http://{ip}:{self.port}{self.path} {SETTLE_S}\n")
                    self.process.stdin.flush()
            self.done.wait(0.2)

    def stop(self):
        self.done.set()
        self.process.kill()
        self.process.wait(timeout=10)


class Readiness:
    """A service's containers as a step sees them: which are ready now and when each first was; by the health
    check (the engine's health_status events) or, for a service under test without one, by the first answer.
    Its engine events (create, die) are streamed from the start."""

    def __init__(self, service):
        if service == "backend" and workers():
            raise SystemExit("stack.py: the backend runs on the cluster's workers, whose containers this engine does "
                             "not see: on a multi-node cluster use up, scale, fail-node and down "
                             "(the other experiments run on a one-node swarm)")
        self.service = service
        self.events = EngineEvents(service)
        self.answers = None if checked(service) else FirstAnswers(service)

    def ready(self):
        if self.answers is None:
            return containers(self.service, healthy=True)
        return {cid for cid in containers(self.service) if cid in self.answers.answers}

    def exactly(self, n):
        """Whether exactly n containers run, all of them ready."""
        return len(self.ready()) == n and len(containers(self.service)) == n

    def when_exactly(self, n):
        """The ready containers once exactly n run, all of them ready (waited for)."""
        wait_until(f"{n} ready {self.service} ({clock(self.service)})", lambda: self.exactly(n))
        return self.ready()

    def first_ready(self):
        """When each container was first ready: {id: wall-clock seconds}."""
        if self.answers is None:
            return self.events.first_healthy()
        return dict(self.answers.answers)

    def stop(self):
        self.events.stop()
        if self.answers is not None:
            self.answers.stop()


AGENT_UID = 10001  # the user the agent image runs as (scripts/image.sh)


def make_token():
    """deploy/.token, made once (32 random bytes in hex). The agents read it as user 10001, as a Swarm secret
    or through a bind mount (the experiments' clients, LXC, deploy/compose.yaml): as root, the file is made
    theirs with mode 0640, so that no other user of this machine reads it and no agent warns; as another user
    (who cannot give a file away), it must stay readable by all, and the agents say so."""
    if not os.path.exists(TOKEN) or os.path.getsize(TOKEN) == 0:
        fd = os.open(TOKEN, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex())
    if os.geteuid() == 0:
        os.chown(TOKEN, AGENT_UID, 0)
        os.chmod(TOKEN, 0o640)
    elif os.stat(TOKEN).st_uid == os.geteuid():
        os.chmod(TOKEN, 0o644)
    return TOKEN


def token(_args):
    print(os.path.relpath(make_token()))


def build_images():
    """scripts/image.sh; TARSIER_IMAGE_PROFILE=release builds the agent image from a release build (for
    measured runs)."""
    release = ["--release"] if os.environ.get("TARSIER_IMAGE_PROFILE") == "release" else []
    subprocess.run([os.path.join(ROOT, "scripts", "image.sh"), *release], check=True, stdout=subprocess.DEVNULL)


def prepare(args):
    """What every experiment's first step needs: a swarm, the images, the token; the service under test
    resolved from `args` and kept for the steps after it."""
    if docker("info", "-f", "{{.Swarm.LocalNodeState}}") != "active":
        log("no swarm: docker swarm init on 127.0.0.1 (left again by `down`)")
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        os.makedirs(os.path.dirname(MADE_SWARM), exist_ok=True)
        open(MADE_SWARM, "w").close()
    build_images()
    make_token()
    sut = resolve_spec(args)
    os.makedirs(STATE, exist_ok=True)
    with open(SPEC_FILE, "w") as f:
        json.dump(sut, f, indent=2)
    return sut


def with_shipped_logs(compose, sut):
    """`up --ship-logs`: a JetStream server in the stack (`nats`, on the manager) and every tarsier agent of
    the stack (density, and the service under test when it is tarsier) writing its activity log and
    shipping it there (docs/logs.md). Off by default: shipping costs the agents CPU the experiments measure."""
    text = ("# stack.py up --ship-logs: every agent of the stack ships its activity log to the stack's NATS.\n"
            "logging:\n  dir: /tmp/tarsier-logs\n  ship: {urls: ['nats://nats:4222']}\n")
    path = os.path.join(STATE, "logging.yaml")
    with open(path, "w") as f:
        f.write(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    compose["configs"]["agent_logging"] = {"file": path, "name": f"{STACK}_logging_{digest}"}
    compose["services"]["nats"] = {
        "image": "tarsier-nats:latest", "command": ["-js", "-sd", "/data", "-p", "4222", "-m", "8222"],
        "networks": ["experiment"],
        # DNS round robin, as every service here: Swarm's virtual IPs need IPVS (see the top of stack.yaml).
        "deploy": {"endpoint_mode": "dnsrr", "replicas": 1, "restart_policy": {"condition": "any"},
                   "placement": {"constraints": ["node.role == manager"]}}}
    agents = {"density": {"command": AGENT_COMMAND}}
    if sut["tarsier"]:
        agents.update({role: compose["services"][role] for role in SUT_SERVICES})
    for name, service in agents.items():
        compose["services"][name] = {**compose["services"].get(name, {}),
                                     "command": [*service["command"], "--config=/etc/tarsier/logging.yaml"],
                                     "configs": [{"source": "agent_logging", "target": "/etc/tarsier/logging.yaml"}]}
    return compose


def up(args):
    sut = prepare(args)
    compose = os.path.join(STATE, "sut.json")
    services = sut_compose(sut)
    if args.ship_logs:
        services = with_shipped_logs(services, sut)
    with open(compose, "w") as f:
        json.dump(services, f, indent=2)
    docker("stack", "deploy", "-c", os.path.join(ROOT, "deploy", "stack.yaml"), "-c", compose, STACK, timeout=300)
    wait_until("the load balancer answers", lambda: http_ok(f"{LB}/lb-health"))
    for service in SUT_SERVICES:
        want = desired(service)
        if workers():
            wait_until(f"{want} running {service} (swarm task state)", lambda: running_tasks(service) == want)
            continue
        ready = Readiness(service)
        wait_until(f"{want} ready {service} ({clock(service)})", lambda: ready.exactly(want))
        ready.stop()
    if sut["ready_path"] == "/health":
        wait_until("the load balancer forwards /health", lambda: http_ok(f"{LB}/health"))
        wait_until("the load balancer forwards /bystander/health", lambda: http_ok(f"{LB}/bystander/health"))
    shown = sut["image"] if checked("backend") else f"{sut['image']} (no health check: ready at its first answer)"
    log(f"stack {STACK} is up: {shown} behind the load balancer at {LB}, token in deploy/.token")


def down(_args):
    label = f"label=com.docker.stack.namespace={STACK}"
    left_behind = ""
    registry_up = docker("ps", "-aq", "--filter", f"name=^{REGISTRY}$", check=False)
    docker("stack", "rm", STACK, check=False)
    if registry_up:
        # provisioning's: every engine gets the service's image back from the registry before it goes, and
        # loses the registry's tag, once no task container holds that tag (Docker refuses to untag it while
        # even a stopped container was made from it).
        image = spec()["image"]
        ref = node_ref(image)
        for engine in engines():
            wait_until("the provisioned service's containers are gone", lambda: not docker(
                *engine, "ps", "-aq", "--filter", label, "--filter", "label=com.docker.swarm.task.id",
                check=False), every=0.5)
            restore_image(image, ref, engine)
            docker(*engine, "rmi", ref, check=False)
        # The tag this engine pushed under (registry()) goes too: the same as `ref` on one node, and removed
        # above; with a cluster the engines above were the workers', and it was left behind.
        pushed = registry_ref(image)
        if image_id(pushed):
            docker("rmi", pushed, check=False)
        docker("rm", "-f", REGISTRY, check=False)
    wait_until("the stack's containers are gone", lambda: not docker("ps", "-aq", "--filter", label), every=0.5)
    wait_until("the stack's network is gone",
               lambda: not docker("network", "ls", "-q", "--filter", label), every=0.5)
    # The databases' volumes (state-after-failover) on this engine; a cluster's workers take theirs with them.
    volumes = docker("volume", "ls", "-q", "--filter", label, check=False).split()
    if volumes:
        docker("volume", "rm", *volumes, check=False)
    if os.path.exists(MADE_SWARM):
        docker("swarm", "leave", "--force", check=False)
        # The bridge `swarm init` made for overlay tasks outlives the swarm; nothing else uses it. Asked until
        # it is gone: just after leaving, the engine may still be taking the last endpoints off it, and a
        # single `network rm` then fails (seen once in CI: the bridge was left behind).
        deadline = time.monotonic() + 30
        while docker("network", "ls", "-q", "--filter", "name=^docker_gwbridge$", check=False):
            gone = subprocess.run(["docker", "network", "rm", "docker_gwbridge"], capture_output=True, text=True)
            if gone.returncode == 0:
                break
            if time.monotonic() > deadline:
                left_behind = (f"; docker_gwbridge stays: {gone.stderr.strip()} (a stale endpoint in the engine's "
                               "own store, moby/moby#37018; restarting the engine clears it)")
                break
            time.sleep(0.5)
        os.remove(MADE_SWARM)
    if os.path.exists(SPEC_FILE):
        os.remove(SPEC_FILE)
    # The last line, so a scenario's step, which shows a command's last line, shows what was left behind too.
    log(f"stack {STACK} removed{left_behind}")


def scale(args):
    service, n = args.service, args.replicas
    if workers():
        return scale_tasks(service, n, args.timeout)
    ready = Readiness(service)
    started = time.time()
    docker("service", "scale", "-d", f"{service_name(service)}={n}")
    wait_until(f"exactly {n} ready {service}", lambda: ready.exactly(n), limit=args.timeout)
    settled = time.time()
    ready.stop()
    first = ready.first_ready()
    # The last container to be ready; a scale down takes until the extra ones are gone.
    last = max(first.values(), default=settled) if n > 0 else settled
    print(json.dumps({"replicas": n, "seconds": round(last - started, 3), "clock": clock(service)}))


def segfault_from_inside(cid):
    if spec()["tarsier"] or cid not in containers("backend") | containers("bystander"):
        tarsier_exec(cid, "command: faults/segfault\ndata: {delay: 0s}\n", 30, check=False)
        return
    # Another service: the signal a segfault raises. A container's PID 1 with no handler for it is
    # protected by the kernel (pid_namespaces(7)) and lives on: said, not waited for.
    docker("kill", "--signal", "SEGV", cid)
    try:
        wait_until(f"{cid[:12]} to die of SIGSEGV", lambda: cid not in containers("backend"), limit=5)
    except SystemExit:
        raise SystemExit(f"stack.py: {cid[:12]} ignored SIGSEGV: its PID 1 has no handler for it, and the kernel "
                         "keeps such signals from a namespace's init; use --how docker-kill (or run it under an init)")


def kill(args):
    service = args.service
    want = desired(service)
    if want < 1:
        raise SystemExit(f"stack.py: {service} has no replicas to kill")
    times = []
    for round_no in range(1, args.times + 1):
        ready = Readiness(service)
        before = ready.when_exactly(want)
        victim = sorted(before)[0]
        killed_at = time.time()
        if args.how == "docker-kill":
            docker("kill", victim)
        else:
            segfault_from_inside(victim)
        wait_until(f"a ready replacement for {victim[:12]}",
                   lambda: len(ready.ready() - before) >= 1 and len(ready.ready()) == want)
        ready.stop()
        new = [at for cid, at in ready.first_ready().items() if cid not in before]
        # From the fault's delivery: the victim's death by the engine's clock, not when this script asked
        # (a segfault goes through `docker exec` and an HTTP call first).
        died_at = ready.events.first(victim, "die") or killed_at
        seconds = (min(new) if new else time.time()) - died_at
        times.append(seconds)
        log(f"{args.how} {round_no}/{args.times}: a replacement was ready ({clock(service)}) {seconds:.2f} s after the kill")
        time.sleep(args.pause)
    print(json.dumps({"kills": len(times), "median_s": round(statistics.median(times), 3),
                      "max_s": round(max(times), 3), "min_s": round(min(times), 3),
                      "times_s": [round(t, 3) for t in times], "clock": clock(service)}))


# The states a service update ends in (anything else is still going).
UPDATE_ENDED = ("completed", "rollback_completed", "paused", "rollback_paused")


def update_state(service):
    """The state of the service's last update, or "" when it has had none."""
    return docker("service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                  service_name(service))


def health(args):
    """The service's health check, set through a rolling update that is waited for."""
    service = args.service
    if not checked(service):
        raise SystemExit(f"stack.py: {service} has no health check to change (`up --health none`)")
    started = time.time()
    docker("service", "update", "-d", "--health-interval", f"{args.interval}s", "--health-timeout",
           f"{args.timeout}s", "--health-retries", str(args.retries), service_name(service), timeout=60)

    def finished():
        # No update status: the check was already so, and the engine updated nothing.
        state = update_state(service) or "unchanged"
        return state if state in UPDATE_ENDED + ("unchanged",) else None

    state = wait_until("the health check update", finished, every=0.2)
    if state not in ("completed", "unchanged"):
        raise SystemExit(f"stack.py: the health check update ended `{state}`")
    want = desired(service)
    wait_until(f"{want} healthy {service}", lambda: len(containers(service, healthy=True)) == want
               and len(containers(service)) == want)
    print(json.dumps({"interval_s": args.interval, "timeout_s": args.timeout, "retries": args.retries,
                      "seconds": round(time.time() - started, 3)}))


def hang_one(cid, hold):
    """Makes one container hang: tarsier's own deadlock (its /health and its commands blocked), or, for another
    service, its main process stopped (SIGSTOP from the host: alive, answering nothing)."""
    if spec()["tarsier"]:
        body = f"command: faults/deadlock\ndetach: true\ndata: {{threads: 2, duration: {hold}s, block_health: true}}\n"
        tarsier_exec(cid, body, 30)
        return lambda: None
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", cid))
    os.kill(pid, signal.SIGSTOP)
    return lambda: os.kill(pid, signal.SIGCONT) if cid in containers("backend") else None


def hang(args):
    """One task hangs (its process alive, answering nothing): the failure a liveness check exists for. Timed
    from the fault's delivery to the engine marking it unhealthy, stopping it, and a replacement being ready.
    Without a health check nothing replaces it: after --hold it is let go again, and the times are null."""
    service = args.service
    want = desired(service)
    ready = Readiness(service)
    before = ready.when_exactly(want)
    victim = sorted(before)[0]
    let_go = hang_one(victim, args.hold)
    delivered = time.time()
    try:
        wait_until(f"a ready replacement for the hung {victim[:12]}",
                   lambda: len(ready.ready() - before) >= 1 and len(ready.ready()) == want, limit=args.hold)
    except SystemExit:
        log(f"{victim[:12]} still hung after {args.hold} s with nothing replacing it: let go again")
    let_go()
    ready.stop()
    unhealthy = ready.events.first(victim, "health_status: unhealthy")
    died = ready.events.first(victim, "die")
    new = [at for cid, at in ready.first_ready().items() if cid not in before]
    result = {
        "detect_s": round(unhealthy - delivered, 3) if unhealthy else None,
        "stopped_s": round(died - delivered, 3) if died else None,
        "replaced_s": round(min(new) - delivered, 3) if new else None,
        "clock": clock(service),
    }
    log(f"hung {victim[:12]}: unhealthy after {result['detect_s']} s, replaced after {result['replaced_s']} s")
    print(json.dumps(result))


def update(args):
    service = args.service
    before = containers(service)
    ready = Readiness(service)
    started = time.time()
    docker("service", "update", "--force", "-d", service_name(service))

    def finished():
        state = update_state(service)
        return state if state in UPDATE_ENDED else None

    state = wait_until("the rolling update", finished, limit=args.timeout, every=0.2)
    ended = time.time()
    ready.stop()
    if state != "completed":
        raise SystemExit(f"stack.py: the rolling update ended `{state}`")
    created = {cid: at for cid, at in ready.events.created().items() if cid not in before}
    first = ready.first_ready()
    times = [first[cid] - at for cid, at in created.items() if cid in first]
    print(json.dumps({"seconds": round(ended - started, 3), "replaced": len(times),
                      "ready_median_s": round(statistics.median(times), 3) if times else None,
                      "ready_max_s": round(max(times), 3) if times else None, "clock": clock(service)}))


def tarsier_exec(cid, body, timeout, url="http://127.0.0.1:8080", check=True):
    """POSTs `body` to the agent in container `cid` with its own CLI and the stack's token: its JSON answer,
    or None when there is none (`check=False`: a command that ends the agent, such as faults/segfault)."""
    out = docker("exec", "-i", cid, "/usr/local/bin/tarsier", "exec", url, "--token-file",
                 "/run/secrets/tarsier_token", "--output", "json", "-", stdin=body, timeout=timeout, check=check)
    try:
        return json.loads(out)
    except ValueError:
        if check:
            raise SystemExit(f"stack.py: the agent in {cid[:12]} answered no JSON: {out[:200]}")
        return None


# A multi-node cluster (scripts/cluster.sh): the workers are engines in network namespaces of their own, so
# this engine sees only its own containers. Across nodes, a replica is timed by its Swarm task's state as the
# manager records it (`running` once the container started and, with a health check, first passed it).


def worker_file(host, name):
    """A file of a cluster worker's engine (scripts/cluster.sh keeps them under /run/tarsier-cluster/nodeI)."""
    return f"/run/tarsier-cluster/node{host.removeprefix('tsr-node')}/{name}"


def workers():
    """The swarm's worker nodes: {node id: host name} (none on a one-node swarm)."""
    out = docker("node", "ls", "--filter", "role=worker", "--format", "{{.ID}} {{.Hostname}}", check=False)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def task_time(stamp):
    """A task's status time (`2026-12-06T04:30:00.123456789Z`) as wall-clock seconds."""
    whole, _, rest = stamp.strip('"').rstrip("Z").partition(".")
    fraction = float(f"0.{rest}") if rest else 0.0
    return datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp() + fraction


def tasks(service):
    """The service's tasks meant to run, as the manager sees them: {task id: (node id, state, since)}."""
    ids = docker("service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", service_name(service),
                 check=False).split()
    if not ids:
        return {}
    out = docker("inspect", "-f", "{{.ID}} {{.NodeID}} {{.Status.State}} {{json .Status.Timestamp}}", *ids,
                 check=False)
    found = {}
    for line in out.splitlines():
        tid, node, state, stamp = line.split(" ", 3)
        found[tid] = (node, state, task_time(stamp))
    return found


def running_tasks(service):
    return sum(1 for _, state, _ in tasks(service).values() if state == "running")


def scale_tasks(service, n, timeout):
    """`scale` across nodes: timed by the tasks' states as the manager records them."""
    before = set(tasks(service))
    started = time.time()
    docker("service", "scale", "-d", f"{service_name(service)}={n}")
    settled = {}

    def exactly_n_running():
        settled.clear()
        settled.update(tasks(service))
        return len(settled) == n and all(state == "running" for _, state, _ in settled.values())

    wait_until(f"exactly {n} running {service}", exactly_n_running, limit=timeout)
    now = settled
    new = [since for tid, (_, _, since) in now.items() if tid not in before]
    seconds = (max(new) if new else time.time()) - started
    print(json.dumps({"replicas": n, "seconds": round(seconds, 3), "clock": "swarm task state"}))


def node_state(node):
    return docker("node", "inspect", "-f", "{{.Status.State}}", node, check=False)


def fail_node(args):
    """A whole worker node fails while it runs replicas of the service: its link cut (`cut`: unreachable, its
    containers alive and alone) or everything on it frozen (`halt`: its engine, containerd and every container
    stopped in place, as a hung machine). Timed from the fault to the manager marking the node down, to
    replacements scheduled on live nodes, and to the first of them running (and healthy, with a check); then
    the fault is undone and the node comes back."""
    service, nodes = args.service, workers()
    if not nodes:
        raise SystemExit("stack.py: fail-node needs worker nodes: scripts/cluster.sh up first")
    want = desired(service)
    wait_until(f"{want} running {service}", lambda: running_tasks(service) == want)
    before = tasks(service)
    per_node = {}
    for node, _, _ in before.values():
        per_node[node] = per_node.get(node, 0) + 1
    victim = max((n for n in per_node if n in nodes), key=lambda n: per_node[n], default=None)
    if victim is None:
        raise SystemExit(f"stack.py: no replica of {service} runs on a worker node")
    host = nodes[victim]
    index = host.removeprefix("tsr-node")
    on_victim = {tid for tid, (node, _, _) in before.items() if node == victim}
    log(f"{args.how}: {host} ({len(on_victim)} of {want} replicas of {service})")
    pid_file = worker_file(host, "docker.pid")
    frozen = []
    faulted = time.time()
    if args.how == "cut":
        subprocess.run(["ip", "-n", host, "link", "set", "eth0", "down"], check=True)
    else:
        engine = int(open(pid_file).read().strip())
        frozen = [engine] + [int(p) for p in subprocess.run(["pgrep", "-P", str(engine)], capture_output=True,
                                                             text=True).stdout.split()]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        for freezer in glob.glob(f"/sys/fs/cgroup/freezer/tarsier-node{index}/*/freezer.state"):
            with open(freezer, "w") as f:
                f.write("FROZEN")

    def undo():
        if args.how == "cut":
            subprocess.run(["ip", "-n", host, "link", "set", "eth0", "up"], check=False)
        else:
            for freezer in glob.glob(f"/sys/fs/cgroup/freezer/tarsier-node{index}/*/freezer.state"):
                with open(freezer, "w") as f:
                    f.write("THAWED")
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)

    try:
        down_at = wait_until(f"{host} marked down", lambda: time.time() if node_state(victim) == "down" else None,
                             limit=args.hold, every=0.2)
        scheduled = {}

        def replaced():
            now = tasks(service)
            for tid, (node, state, since) in now.items():
                if tid not in before and node != victim:
                    scheduled.setdefault(tid, time.time())
            running = [since for tid, (node, state, since) in now.items()
                       if tid not in before and node != victim and state == "running"]
            return running if len(running) >= len(on_victim) else None

        running = wait_until(f"{len(on_victim)} replacements running", replaced, limit=args.hold, every=0.2)
    finally:
        undo()
    wait_until(f"{host} ready again", lambda: node_state(victim) == "ready", every=0.5)
    result = {"node": host, "replicas_lost": len(on_victim), "down_s": round(down_at - faulted, 3),
              "scheduled_s": round(min(scheduled.values()) - faulted, 3),
              "first_running_s": round(min(running) - faulted, 3), "all_running_s": round(max(running) - faulted, 3),
              "clock": "swarm task state" + (" (health check)" if checked(service) else "")}
    log(f"{host} down after {result['down_s']} s; replacements running after {result['first_running_s']}-"
        f"{result['all_running_s']} s")
    print(json.dumps(result))


def node_docker(node_id):
    """The docker CLI's arguments for the engine of a node: this one, or a cluster worker's socket."""
    host = workers().get(node_id)
    return [] if host is None else worker_docker(host)


def worker_docker(host):
    """The docker CLI's arguments for a cluster worker's engine, by its host name."""
    return ["-H", f"unix://{worker_file(host, 'docker.sock')}"]


def db_task(service):
    """The database's one running task: (task id, node id, container id), once it runs (healthy)."""
    def running():
        for tid, (node, state, _) in tasks(service).items():
            if state == "running":
                cid = docker("inspect", "-f", "{{.Status.ContainerStatus.ContainerID}}", tid, check=False)
                return (tid, node, cid) if cid else None
        return None
    return wait_until(f"{service} running", running)


def in_db(node, cid, command, stdin=None):
    return docker(*node_docker(node), "exec", "-i", cid, *shlex.split(command), stdin=stdin, timeout=300)


def state(args):
    """What is left of a database's records after a failover: the database (one replica, restart_policy any)
    gets `--records` numbered records (each on disk before it is acknowledged), then its container is killed
    (`kill`: Swarm starts a new one, on the same node) or its node drained (`move`: the task goes to another
    node, as after a node failure), and the records its new container finds are counted. Its data directory
    is on no volume (`none`: the container's own layer) or on a local named volume (`local`: on its node)."""
    if args.how == "move" and len(workers()) < 2:
        raise SystemExit("stack.py: --how move needs two worker nodes: scripts/cluster.sh up 2 first")
    service = "db"
    name = service_name(service)
    volume = f"{STACK}_dbdata_{os.getpid()}"
    create = ["service", "create", "-d", "--name", name, "--replicas", "1", "--restart-condition", "any",
              "--restart-delay", "0s", "--network", f"{STACK}_experiment",
              "--label", f"com.docker.stack.namespace={STACK}",
              "--container-label", f"com.docker.stack.namespace={STACK}"]
    if args.volume == "local":
        create += ["--mount", f"type=volume,source={volume},target={args.data_dir},"
                              f"volume-label=com.docker.stack.namespace={STACK}"]
    if workers():
        create += ["--constraint", "node.role == worker"]
    docker(*create, args.image)
    drained = None
    try:
        _, node, cid = db_task(service)
        lines = "".join(args.write_line.replace("{n}", str(n)) + "\n" for n in range(1, args.records + 1))
        in_db(node, cid, args.write_cmd, stdin=lines)
        written = int(in_db(node, cid, args.count_cmd).split()[-1])
        if written != args.records:
            raise SystemExit(f"stack.py: wrote {args.records} records, the database counts {written}")
        before = set(tasks(service))
        started = time.time()
        if args.how == "kill":
            docker(*node_docker(node), "kill", cid)
        else:
            drained = node
            docker("node", "update", "--availability", "drain", node)

        def replacement():
            for tid, (where, st, since) in tasks(service).items():
                if tid not in before and st == "running":
                    return tid, where, since
            return None

        tid, where, since = wait_until("the database running again", replacement)
        cid = docker("inspect", "-f", "{{.Status.ContainerStatus.ContainerID}}", tid)
        left = int(wait_until("the database answering", lambda: in_db(where, cid, args.count_cmd)).split()[-1])
        moved = where != node
    finally:
        docker("service", "rm", name, check=False)
        if drained:
            docker("node", "update", "--availability", "active", drained, check=False)
    result = {"written": written, "left": left, "lost": written - left, "moved": int(moved),
              "seconds": round(since - started, 3), "clock": "swarm task state (health check)"}
    log(f"{args.how} with volume {args.volume}: {left} of {written} records left "
        f"({'on another node' if moved else 'on the same node'})")
    print(json.dumps(result))


NETPERF = "tarsier-netperf:latest"
PATHS = ("host", "bridge", "overlay", "node", "overlay-node")


def net_path(args):
    """The same small HTTP service (busybox httpd) and iperf3 server reached over one network path, from a
    client in a container on this engine: `host` (both on this machine's own network: loopback), `bridge`
    (Docker's default bridge), `overlay` (the stack's overlay network, both on this node), and with
    scripts/cluster.sh's workers, to a server on another node: `node` (its own network, no overlay) and
    `overlay-node` (the overlay, VXLAN between the nodes). The client is a tarsier agent running net/http_load
    (closed model) and iperf3's client."""
    path, label = args.path, f"com.docker.stack.namespace={STACK}"
    nodes = sorted(workers().items(), key=lambda item: item[1])
    if path in ("node", "overlay-node") and not nodes:
        raise SystemExit(f"stack.py: --path {path} needs worker nodes: scripts/cluster.sh up first")
    overlay = f"{STACK}_experiment"
    far = node_docker(nodes[0][0]) if path in ("node", "overlay-node") else []
    # Both ends on the same kind of network; `node` and `overlay-node` put the server on the other node.
    net = {"host": "host", "bridge": "bridge", "overlay": overlay, "node": "host", "overlay-node": overlay}[path]
    tag = f"{STACK}_{path}_{os.getpid()}"
    started = []

    def run(prefix, name, *rest):
        docker(*prefix, "run", "-d", "--pull", "never", "--name", name, "--label", label, *rest)
        started.append((prefix, name))

    try:
        run(far, f"{tag}_server", "--network", net, NETPERF)
        if path == "host":
            ip = "127.0.0.1"
        elif path == "node":
            ip = docker("node", "inspect", "-f", "{{.Status.Addr}}", nodes[0][0])
        else:
            ip = docker(*far, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}',
                        f"{tag}_server")
        client = f"{tag}_client"
        run([], client, "--network", net, "-v", f"{TOKEN}:/run/secrets/tarsier_token:ro", TARSIER_IMAGE,
            "agent", "--listen=127.0.0.1:18095", "--service-listen=127.0.0.1:18096",
            "--token-file=/run/secrets/tarsier_token", f"--http-load-targets={ip}/32")
        wait_until("the client agent", lambda: subprocess.run(
            ["docker", "exec", client, "/usr/local/bin/tarsier", "probe", "--timeout=1s",
             "http://127.0.0.1:18096/health"], capture_output=True, timeout=30).returncode == 0, every=0.3)
        url = f"http://{ip}:18091/health"

        def http_load(seconds):
            body = (f"command: net/http_load\ndata: {{url: '{url}', concurrency: {args.concurrency}, "
                    f"duration: {seconds}s, timeout: 5s}}\n")
            return tarsier_exec(client, body, seconds + 60, url="http://127.0.0.1:18095")["result"]

        wait_until(f"the server at {url}", lambda: http_load(1)["succeeded"] > 0)
        result = http_load(args.seconds)
        iperf = docker("run", "--rm", "--pull", "never", "--network", net, "--label", label, "--entrypoint", "/usr/bin/iperf3",
                       NETPERF, "--client", ip, "--port", "5201", "--time", str(args.iperf_seconds), "--json",
                       timeout=args.iperf_seconds + 60)
        bits = json.loads(iperf)["end"]["sum_received"]["bits_per_second"]
    finally:
        for prefix, name in started:
            docker(*prefix, "rm", "-f", name, check=False)
    out = {"path": path, "req_per_s": round(result["req_per_s"], 1), "p50_ms": result["latency_ms"]["p50"],
           "p99_ms": result["latency_ms"]["p99"], "gbit_per_s": round(bits / 1e9, 3)}
    log(f"{path}: {out['req_per_s']:.0f} req/s, p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, "
        f"{out['gbit_per_s']} Gbit/s")
    print(json.dumps(out))


# provisioning: a private registry (Debian's docker-registry, tarsier-registry:latest) on this engine,
# published on loopback (an engine trusts a registry on 127.0.0.0/8 without TLS) and, with scripts/cluster.sh's
# workers, on the cluster bridge's manager address (cluster.sh lets the workers' engines trust it).
REGISTRY = f"{STACK}-registry"
REGISTRY_PORT = 5000
CLUSTER_MANAGER = "198.51.100.1"


def registry_ref(image, where="127.0.0.1"):
    """The service's image as pushed to the private registry: `127.0.0.1:5000/tarsier:latest`."""
    return f"{where}:{REGISTRY_PORT}/{image.split('/')[-1]}"


def node_ref(image):
    """The registry's tag the nodes that run the provisioned service pull: the cluster's workers reach the
    registry on the bridge's manager address, this engine on loopback."""
    return registry_ref(image, CLUSTER_MANAGER if workers() else "127.0.0.1")


def image_id(ref, engine=()):
    """The id of an engine's image `ref`, or "" when it has none."""
    return docker(*engine, "image", "inspect", "-f", "{{.Id}}", ref, check=False)


def registry(args):
    """The private registry up with the service under test in it, the shaper on its link, and the service
    `provisioned` made with no task (its network and secret with it), ready to be timed by `provision`."""
    sut = prepare(args)
    docker("rm", "-f", REGISTRY, check=False)
    publish = ["-p", f"127.0.0.1:{REGISTRY_PORT}:5000"]
    if workers():
        publish += ["-p", f"{CLUSTER_MANAGER}:{REGISTRY_PORT}:5000"]
    docker("run", "-d", "--pull", "never", "--name", REGISTRY, "--label", f"com.docker.stack.namespace={STACK}",
           *publish, REGISTRY_IMAGE)
    wait_until("the registry answers", lambda: http_ok(f"http://127.0.0.1:{REGISTRY_PORT}/v2/"))
    if args.mbit > 0:
        # Its answers leave through its own eth0: a token bucket there is the link every pull crosses (tc from
        # tarsier's image, in the registry's network namespace; nothing on this machine's own interfaces).
        rate_bytes = args.mbit * 1_000_000 // 8
        docker("run", "--rm", "--pull", "never", "--network", f"container:{REGISTRY}", "--cap-add", "NET_ADMIN",
               "--user", "0", "--entrypoint", "/sbin/tc", TARSIER_IMAGE, "qdisc", "add", "dev", "eth0", "root",
               "tbf", "rate", f"{args.mbit}mbit", "burst", str(max(rate_bytes // 100, 64 * 1024)), "latency", "100ms")
    ref = registry_ref(sut["image"])
    docker("tag", sut["image"], ref)
    docker("push", "-q", ref, timeout=600)
    provisioned = {**sut, "image": node_ref(sut["image"])}
    compose = {"version": "3.8", "services": {"provisioned": sut_service(provisioned, "provisioned")},
               "networks": {"experiment": {"driver": "overlay", "attachable": True}},
               "secrets": {"tarsier_token": {"file": TOKEN}}}
    path = os.path.join(STATE, "provisioned.json")
    with open(path, "w") as f:
        json.dump(compose, f, indent=2)
    # Never resolved to a digest by the manager: each node asks the registry itself, as it does when scaled.
    docker("stack", "deploy", "--resolve-image", "never", "-c", path, STACK, timeout=300)
    size = int(docker("image", "inspect", "-f", "{{.Size}}", sut["image"]))
    log(f"registry {REGISTRY} at 127.0.0.1:{REGISTRY_PORT} holds {ref} ({size / 2**20:.1f} MiB)"
        + (f", its link shaped to {args.mbit} Mbit/s" if args.mbit > 0 else ""))


def engines():
    """The docker CLI's arguments for each engine the provisioned service runs on: the workers', or this one."""
    hosts = workers().values()
    return [worker_docker(host) for host in hosts] if hosts else [[]]


def set_image_state(image, ref, present):
    """The service's image present on every engine that runs it (pulled from the registry: the registry's tag,
    as a node has after a first pull), or absent: every tag of it removed, with the provisioned service's
    stopped containers that hold it, so that its layers are gone (except those shared with another image,
    such as the base they are built on)."""
    label = f"label=com.docker.swarm.service.name={service_name('provisioned')}"
    for engine in engines():
        stopped = docker(*engine, "ps", "-aq", "--filter", label, check=False).split()
        if stopped:
            docker(*engine, "rm", "-f", *stopped, check=False)
        if present:
            docker(*engine, "pull", "-q", ref, timeout=600)
            continue
        found = image_id(ref, engine) or image_id(image, engine)
        if not found:
            continue
        users = docker(*engine, "ps", "-aq", "--filter", f"ancestor={found}", check=False).split()
        if users:
            raise SystemExit(f"stack.py: {image} is used by containers {' '.join(users)} on that engine: an absent "
                             "image cannot be made while they hold it (stack.py down, or remove them)")
        docker(*engine, "rmi", "-f", found, check=False)


def restore_image(image, ref, engine=()):
    """An engine's tag of the service's image back after an absent round (pulled again if it went)."""
    if image_id(image, engine):
        return
    if image_id(ref, engine) or docker(*engine, "pull", "-q", ref, check=False, timeout=600):
        docker(*engine, "tag", ref, image, check=False)
    if not image_id(image, engine):
        log(f"{image} is gone from an engine and the registry could not give it back: scripts/image.sh makes it")


def provision(args):
    """Scales the provisioned service from 0 to N with its image present on the nodes or absent (pulled from
    the registry), timed by its tasks' states as the manager records them: `running` once the container
    started and, with a health check, first passed it."""
    sut = spec()
    image = sut["image"]
    ref = node_ref(image)
    service = "provisioned"
    docker("service", "scale", "-d", f"{service_name(service)}=0")
    wait_until(f"no {service} task", lambda: not tasks(service))
    try:
        set_image_state(image, ref, args.image_on_node == "present")
        seen = {}  # task id -> {state: the time the manager says it entered it}
        started = time.time()
        docker("service", "scale", "-d", f"{service_name(service)}={args.replicas}")

        def all_running():
            now = tasks(service)
            for tid, (_, state, since) in now.items():
                seen.setdefault(tid, {}).setdefault(state, since)
            return len(now) == args.replicas and all(state == "running" for _, state, _ in now.values())

        wait_until(f"{args.replicas} running {service}", all_running, limit=args.timeout, every=0.05)
        finished = time.time()
    finally:
        if args.image_on_node == "absent":
            for engine in engines():
                restore_image(image, ref, engine)
    running = [states["running"] for states in seen.values() if "running" in states]
    # A task's image is on its node once it leaves `preparing` (the pull); the first later state seen is
    # when (a state skipped between two looks is dated by the next one: an upper bound).
    pulled = [min(at for state, at in states.items() if state in ("ready", "starting", "running"))
              for states in seen.values() if "running" in states]
    out = {"image_on_node": args.image_on_node, "replicas": args.replicas,
           "seconds": round((max(running) if running else finished) - started, 3),
           "first_s": round(min(running, default=finished) - started, 3),
           "pulled_s": round(max(pulled, default=finished) - started, 3),
           "image_mib": round(int(docker("image", "inspect", "-f", "{{.Size}}", registry_ref(image), check=False) or 0) / 2**20, 1),
           "clock": "swarm task state" + ("" if checked(service) else " (no health check: container started)")}
    log(f"{args.replicas} x {image} ({args.image_on_node}): image on the nodes after {out['pulled_s']} s, "
        f"first running {out['first_s']} s, all {out['seconds']} s")
    print(json.dumps(out))


def cgroup_file(cid, controller, v1_name, v2_name):
    """A file of a container's cgroup (cgroupfs driver; v1 or v2), or None where it is not found."""
    parent = docker("inspect", "-f", "{{.HostConfig.CgroupParent}}", cid, check=False) or "/docker"
    for path in (f"/sys/fs/cgroup/{controller}{parent}/{cid}/{v1_name}", f"/sys/fs/cgroup{parent}/{cid}/{v2_name}"):
        if os.path.exists(path):
            return path
    return None


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def runnable_ns(cid):
    """The container's threads' time on a CPU and waiting for one (/proc/TID/schedstat), in ns."""
    tasks_file = cgroup_file(cid, "cpu", "tasks", "cgroup.threads")
    return schedstat(open(tasks_file).read().split() if tasks_file else [])


def schedstat(tids):
    """Time on a CPU and waiting for one of these threads (/proc/TID/schedstat), in ns."""
    run = wait = 0
    for tid in tids:
        try:
            with open(f"/proc/{tid}/schedstat") as f:
                on_cpu, waiting, _ = f.read().split()
            run, wait = run + int(on_cpu), wait + int(waiting)
        except (OSError, ValueError):
            continue
    return run, wait


def host_memory_used():
    """This machine's memory in use (MemTotal - MemAvailable), in bytes."""
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def load(args):
    """Every container holds --ram and spins a thread at --cpu-load percent of a core for --seconds. While
    they spin: the CPU share each got (its own measure), the share it asked for (its threads' time running or
    runnable, from the scheduler's own accounting), each container's memory (its cgroup's usage) and the
    host's memory in use."""
    targets = sorted(containers(args.service))
    if not targets:
        raise SystemExit(f"stack.py: {args.service} has no running tasks")
    hold = f"command: heavy_load/gobble_ram\ndata: {{size: {args.ram}}}\n"
    spin = f"command: heavy_load/spin_cpu\ndata: {{duration: {args.seconds}s, load: {args.cpu_load}, threads: 1}}\n"
    held = threading.Barrier(len(targets) + 1, timeout=120)

    def one(cid):
        tarsier_exec(cid, hold, 60)
        held.wait()
        return tarsier_exec(cid, spin, args.seconds + 60)["result"]["cpu_fraction"]

    host_before = host_memory_used()
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        shares = pool.map(one, targets)
        held.wait()
        # A window inside every spin: they start within a moment of each other (a docker exec each).
        time.sleep(min(3, args.seconds / 4))
        start = {cid: runnable_ns(cid) for cid in targets}
        started = time.monotonic()
        time.sleep(max(1, args.seconds / 2))
        end = {cid: runnable_ns(cid) for cid in targets}
        window_ns = (time.monotonic() - started) * 1e9
        memory = [read_int(cgroup_file(cid, "memory", "memory.usage_in_bytes", "memory.current") or "") for cid in targets]
        host_loaded = host_memory_used()
        shares = list(shares)
    asked = [((end[c][0] - start[c][0]) + (end[c][1] - start[c][1])) / window_ns for c in targets]
    got = [(end[c][0] - start[c][0]) / window_ns for c in targets]
    memory = [m for m in memory if m is not None]
    mib = 1024 * 1024
    print(json.dumps({
        "containers": len(shares), "cpu_share_mean": round(statistics.mean(shares), 4),
        "cpu_share_min": round(min(shares), 4), "cpu_share_max": round(max(shares), 4),
        "cpu_asked_mean": round(statistics.mean(asked), 4), "cpu_got_mean": round(statistics.mean(got), 4),
        "memory_per_container_mib": round(statistics.mean(memory) / mib, 1) if memory else None,
        "host_memory_used_mib": round(host_loaded / mib, 1),
        "host_memory_added_mib": round((host_loaded - host_before) / mib, 1),
    }))


def sut_arguments(p):
    """The service under test's options, as `up` and `registry` take them."""
    p.add_argument("--image", default=TARSIER_IMAGE)
    p.add_argument("--command", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--health-port", type=int, default=None)
    p.add_argument("--health", default="default")
    p.add_argument("--ready-path", default="/health")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("up")
    sut_arguments(p)
    p.add_argument("--ship-logs", action="store_true",
                   help="a NATS JetStream server in the stack; every tarsier agent ships its activity log to it")
    p.set_defaults(run=up)
    commands.add_parser("down").set_defaults(run=down)
    commands.add_parser("token").set_defaults(run=token)
    p = commands.add_parser("scale")
    p.add_argument("service")
    p.add_argument("replicas", type=int)
    p.add_argument("--timeout", type=float, default=SETTLE_S)
    p.set_defaults(run=scale)
    p = commands.add_parser("kill")
    p.add_argument("service")
    p.add_argument("--how", choices=["docker-kill", "segfault"], required=True)
    p.add_argument("--times", type=int, default=5)
    p.add_argument("--pause", type=float, default=2.0, help="seconds between kills")
    p.set_defaults(run=kill)
    p = commands.add_parser("update")
    p.add_argument("service")
    p.add_argument("--timeout", type=float, default=SETTLE_S)
    p.set_defaults(run=update)
    p = commands.add_parser("health")
    p.add_argument("service")
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--retries", type=int, required=True)
    p.set_defaults(run=health)
    p = commands.add_parser("hang")
    p.add_argument("service")
    p.add_argument("--hold", type=int, default=120, help="seconds the task stays hung at most")
    p.set_defaults(run=hang)
    p = commands.add_parser("fail-node")
    p.add_argument("service")
    p.add_argument("--how", choices=["cut", "halt"], required=True)
    p.add_argument("--hold", type=float, default=120, help="seconds the node stays failed at most")
    p.set_defaults(run=fail_node)
    p = commands.add_parser("state")
    p.add_argument("--volume", choices=["none", "local"], required=True)
    p.add_argument("--how", choices=["kill", "move"], required=True)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--image", default="tarsier-redis:latest")
    p.add_argument("--data-dir", default="/data")
    p.add_argument("--write-cmd", default="redis-cli", help="run in the container; reads one record a line")
    p.add_argument("--write-line", default="SET rec:{n} {n}", help="a record, {n} its number")
    p.add_argument("--count-cmd", default="redis-cli DBSIZE", help="prints the records held, as its last word")
    p.set_defaults(run=state)
    p = commands.add_parser("net-path")
    p.add_argument("--path", choices=PATHS, required=True)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--iperf-seconds", type=int, default=5)
    p.set_defaults(run=net_path)
    p = commands.add_parser("registry")
    sut_arguments(p)
    p.add_argument("--mbit", type=int, default=1000, help="the registry's link in Mbit/s (0: not shaped)")
    p.set_defaults(run=registry)
    p = commands.add_parser("provision")
    p.add_argument("--image-on-node", choices=["present", "absent"], required=True)
    p.add_argument("--replicas", type=int, required=True)
    p.add_argument("--timeout", type=float, default=SETTLE_S)
    p.set_defaults(run=provision)
    p = commands.add_parser("load")
    p.add_argument("service")
    p.add_argument("--ram", default="64MiB")
    p.add_argument("--cpu-load", type=int, default=50)
    p.add_argument("--seconds", type=int, default=10)
    p.set_defaults(run=load)
    args = parser.parse_args()
    # A step stopped from outside (a scenario's timeout, `kill`) still undoes what it did (a frozen node, a
    # cut link, a hung replica): SIGTERM ends the process through its `finally:` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 0 <= getattr(args, "replicas", 0) <= 64:
        parser.error("replicas: 0 to 64")
    if not 0 <= getattr(args, "mbit", 0) <= 100_000:
        parser.error("--mbit: 0 to 100000")
    if args.command not in ("up", "down", "token") and not 1 <= getattr(args, "times", 1) <= 100:
        parser.error("--times: 1 to 100")
    if not 1 <= getattr(args, "records", 1) <= 1_000_000:
        parser.error("--records: 1 to 1000000")
    args.run(args)


if __name__ == "__main__":
    main()
