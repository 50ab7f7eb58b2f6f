#!/usr/bin/env python3
"""The experiment stack (deploy/stack.yaml) on Docker Swarm mode, driven by the `run:` steps of
scenarios/experiments/. Each measuring command prints progress on stderr and ONE JSON object as its last
line of stdout, which a scenario's `run: {values: ..., record: ...}` reads.

  stack.py up                        init a one-node swarm if the engine has none (remembered, so `down`
                                     leaves it again), build the images, deploy, wait until all is healthy
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
  stack.py load SERVICE --ram 64MiB --cpu-load 50 --seconds 10
                                     in every task: hold the memory, then spin one thread at the load
                                     -> {"containers", "cpu_share_mean", "cpu_share_min", "cpu_share_max"}:
                                     the CPU fraction each got while asking for cpu-load percent of a core

Services are named as in deploy/stack.yaml (backend, bystander, density, lb). TARSIER_STACK names the stack
(default tarsier-exp). Times come from the engine's own events (create, health_status), streamed while the
step runs, not from polling.
On Kubernetes the same steps are kubectl commands; docs/experiments.md lists them.
"""

import argparse
import atexit
import json
import os
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


def make_token():
    if not os.path.exists(TOKEN) or os.path.getsize(TOKEN) == 0:
        with open(TOKEN, "w") as f:
            f.write(os.urandom(32).hex())
    # The agents run as user 10001 and read it as a Swarm secret.
    os.chmod(TOKEN, 0o644)
    return TOKEN


def token(_args):
    print(os.path.relpath(make_token()))


def up(_args):
    if docker("info", "-f", "{{.Swarm.LocalNodeState}}") != "active":
        log("no swarm: docker swarm init on 127.0.0.1 (left again by `down`)")
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        os.makedirs(os.path.dirname(MADE_SWARM), exist_ok=True)
        open(MADE_SWARM, "w").close()
    # TARSIER_IMAGE_PROFILE=release builds the agent image from a release build (for measured runs).
    release = ["--release"] if os.environ.get("TARSIER_IMAGE_PROFILE") == "release" else []
    subprocess.run([os.path.join(ROOT, "scripts", "image.sh"), *release], check=True, stdout=subprocess.DEVNULL)
    make_token()
    docker("stack", "deploy", "-c", os.path.join(ROOT, "deploy", "stack.yaml"), STACK, timeout=300)
    for service in ("backend", "bystander"):
        want = desired(service)
        wait_until(f"{want} healthy {service}", lambda: len(containers(service, healthy=True)) == want)
    wait_until("the load balancer forwards /health", lambda: http_ok(f"{LB}/health"))
    wait_until("the load balancer forwards /bystander/health", lambda: http_ok(f"{LB}/bystander/health"))
    log(f"stack {STACK} is up: load balancer at {LB}, token in deploy/.token")


def down(_args):
    docker("stack", "rm", STACK, check=False)
    label = f"label=com.docker.stack.namespace={STACK}"
    wait_until("the stack's containers are gone", lambda: not docker("ps", "-aq", "--filter", label), every=0.5)
    wait_until("the stack's network is gone",
               lambda: not docker("network", "ls", "-q", "--filter", label), every=0.5)
    if os.path.exists(MADE_SWARM):
        docker("swarm", "leave", "--force", check=False)
        # The bridge `swarm init` made for overlay tasks outlives the swarm; nothing else uses it.
        docker("network", "rm", "docker_gwbridge", check=False)
        os.remove(MADE_SWARM)
    log(f"stack {STACK} removed")


def scale(args):
    service, n = args.service, args.replicas
    events = EngineEvents(service)
    started = time.time()
    docker("service", "scale", "-d", f"{service_name(service)}={n}")
    wait_until(f"exactly {n} healthy {service}",
               lambda: len(containers(service, healthy=True)) == n and len(containers(service)) == n,
               limit=args.timeout)
    settled = time.time()
    events.stop()
    healthy = events.first_healthy()
    # The last container to turn healthy, by the engine's clock; a scale down takes until the extra ones are gone.
    last = max(healthy.values(), default=settled) if n > 0 else settled
    print(json.dumps({"replicas": n, "seconds": round(last - started, 3)}))


def segfault_from_inside(cid):
    body = "command: faults/segfault\ndata: {delay: 0s}\n"
    docker("exec", "-i", cid, "/usr/local/bin/tarsier", "exec", "http://127.0.0.1:8080",
           "--token-file", "/run/secrets/tarsier_token", "-", check=False, stdin=body, timeout=30)


def kill(args):
    service = args.service
    want = desired(service)
    if want < 1:
        raise SystemExit(f"stack.py: {service} has no replicas to kill")
    times = []
    for round_no in range(1, args.times + 1):
        before = wait_until(f"{want} healthy {service}",
                            lambda: (lambda c: c if len(c) == want else None)(containers(service, healthy=True)))
        victim = sorted(before)[0]
        events = EngineEvents(service)
        killed_at = time.time()
        if args.how == "docker-kill":
            docker("kill", victim)
        else:
            segfault_from_inside(victim)
        wait_until(f"a healthy replacement for {victim[:12]}",
                   lambda: len(containers(service, healthy=True) - before) >= 1
                   and len(containers(service, healthy=True)) == want)
        events.stop()
        healthy = events.first_healthy()
        new = [at for cid, at in healthy.items() if cid not in before]
        # From the fault's delivery: the victim's death by the engine's clock, not when this script asked
        # (a segfault goes through `docker exec` and an HTTP call first).
        died_at = events.first(victim, "die") or killed_at
        seconds = (min(new) if new else time.time()) - died_at
        times.append(seconds)
        log(f"{args.how} {round_no}/{args.times}: a replacement was healthy {seconds:.2f} s after the kill")
        time.sleep(args.pause)
    print(json.dumps({"kills": len(times), "median_s": round(statistics.median(times), 3),
                      "max_s": round(max(times), 3), "min_s": round(min(times), 3),
                      "times_s": [round(t, 3) for t in times]}))


def health(args):
    """The service's health check, set through a rolling update that is waited for."""
    service = args.service
    started = time.time()
    docker("service", "update", "-d", "--health-interval", f"{args.interval}s", "--health-timeout",
           f"{args.timeout}s", "--health-retries", str(args.retries), service_name(service), timeout=60)

    def finished():
        state = docker("service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                       service_name(service))
        # No update status: the check was already so, and the engine updated nothing.
        state = state or "unchanged"
        return state if state in ("completed", "rollback_completed", "paused", "rollback_paused", "unchanged") else None

    state = wait_until("the health check update", finished, every=0.2)
    if state not in ("completed", "unchanged"):
        raise SystemExit(f"stack.py: the health check update ended `{state}`")
    want = desired(service)
    wait_until(f"{want} healthy {service}", lambda: len(containers(service, healthy=True)) == want
               and len(containers(service)) == want)
    print(json.dumps({"interval_s": args.interval, "timeout_s": args.timeout, "retries": args.retries,
                      "seconds": round(time.time() - started, 3)}))


def hang(args):
    """One task hangs (its process alive, /health and the commands it serves blocked): the failure a
    liveness check exists for. Timed from the fault's delivery (the deadlock job started) to the engine
    marking it unhealthy, stopping it, and a replacement turning healthy."""
    service = args.service
    want = desired(service)
    before = wait_until(f"{want} healthy {service}",
                        lambda: (lambda c: c if len(c) == want else None)(containers(service, healthy=True)))
    victim = sorted(before)[0]
    events = EngineEvents(service)
    body = f"command: faults/deadlock\ndetach: true\ndata: {{threads: 2, duration: {args.hold}s, block_health: true}}\n"
    docker("exec", "-i", victim, "/usr/local/bin/tarsier", "exec", "http://127.0.0.1:8080",
           "--token-file", "/run/secrets/tarsier_token", "-", stdin=body, timeout=30)
    delivered = time.time()
    wait_until(f"a healthy replacement for the hung {victim[:12]}",
               lambda: len(containers(service, healthy=True) - before) >= 1
               and len(containers(service, healthy=True)) == want, limit=args.hold)
    events.stop()
    unhealthy = events.first(victim, "health_status: unhealthy")
    died = events.first(victim, "die")
    new = [at for cid, at in events.first_healthy().items() if cid not in before]
    result = {
        "detect_s": round(unhealthy - delivered, 3) if unhealthy else None,
        "stopped_s": round(died - delivered, 3) if died else None,
        "replaced_s": round(min(new) - delivered, 3) if new else None,
    }
    log(f"hung {victim[:12]}: unhealthy after {result['detect_s']} s, replaced after {result['replaced_s']} s")
    print(json.dumps(result))


def update(args):
    service = args.service
    before = containers(service)
    events = EngineEvents(service)
    started = time.time()
    docker("service", "update", "--force", "-d", service_name(service))

    def finished():
        state = docker("service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                       service_name(service))
        return state if state in ("completed", "rollback_completed", "paused", "rollback_paused") else None

    state = wait_until("the rolling update", finished, limit=args.timeout, every=0.2)
    ended = time.time()
    events.stop()
    if state != "completed":
        raise SystemExit(f"stack.py: the rolling update ended `{state}`")
    created = {cid: at for cid, at in events.created().items() if cid not in before}
    healthy = events.first_healthy()
    ready = [healthy[cid] - at for cid, at in created.items() if cid in healthy]
    print(json.dumps({"seconds": round(ended - started, 3), "replaced": len(ready),
                      "ready_median_s": round(statistics.median(ready), 3) if ready else None,
                      "ready_max_s": round(max(ready), 3) if ready else None}))


def tarsier_exec(cid, body, timeout):
    out = docker("exec", "-i", cid, "/usr/local/bin/tarsier", "exec", "http://127.0.0.1:8080",
                 "--token-file", "/run/secrets/tarsier_token", "--output", "json", "-",
                 stdin=body, timeout=timeout)
    return json.loads(out)


def load(args):
    targets = sorted(containers(args.service))
    if not targets:
        raise SystemExit(f"stack.py: {args.service} has no running tasks")
    hold = f"command: heavy_load/gobble_ram\ndata: {{size: {args.ram}}}\n"
    spin = f"command: heavy_load/spin_cpu\ndata: {{duration: {args.seconds}s, load: {args.cpu_load}, threads: 1}}\n"

    def one(cid):
        tarsier_exec(cid, hold, 60)
        return tarsier_exec(cid, spin, args.seconds + 60)["result"]["cpu_fraction"]

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        shares = list(pool.map(one, targets))
    print(json.dumps({"containers": len(shares), "cpu_share_mean": round(statistics.mean(shares), 4),
                      "cpu_share_min": round(min(shares), 4), "cpu_share_max": round(max(shares), 4)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up").set_defaults(run=up)
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
    p = commands.add_parser("load")
    p.add_argument("service")
    p.add_argument("--ram", default="64MiB")
    p.add_argument("--cpu-load", type=int, default=50)
    p.add_argument("--seconds", type=int, default=10)
    p.set_defaults(run=load)
    args = parser.parse_args()
    if args.command not in ("up", "down", "token") and not 1 <= getattr(args, "times", 1) <= 100:
        parser.error("--times: 1 to 100")
    args.run(args)


if __name__ == "__main__":
    main()
