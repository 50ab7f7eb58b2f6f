"""Fidelity of the network faults (benches/run.sh netfault): what each fault does, measured from outside, next to
what was asked and the link's own baseline from the same run. Two network namespaces joined by a veth pair
(TEST-NET-1, reachable from nowhere else): the agent runs in A, as a sidecar would, and everything is measured
from B or between the two. Needs root, iproute2, nftables, iptables, iperf3 and ping. Writes the table into
docs/network-faults.md between its markers, and prints it.

Every loop is bounded in count and time; nothing touches the machine's own interfaces."""

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

TARSIER = os.environ.get("TARSIER_BIN", "target/release/tarsier")
A, B = "192.0.2.1", "192.0.2.2"
NS_A, NS_B = f"tnfa{os.getpid()}", f"tnfb{os.getpid()}"
AGENT_PORT, ECHO_PORT, LISTEN_PORT = 18080, 19000, 19001
ROWS = []


def row(measure, value, asked, baseline, ratio, target, met, how):
    ROWS.append((measure, value, asked, baseline, ratio, target, met, how))
    print(f"  {measure}: {value} | asked {asked} | baseline {baseline} | {ratio} | {target} | {met}", file=sys.stderr)


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def in_ns(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


def spawn_in(ns, *args):
    return subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def setup():
    sh("ip", "netns", "add", NS_A)
    sh("ip", "netns", "add", NS_B)
    sh("ip", "link", "add", "va", "netns", NS_A, "type", "veth", "peer", "name", "vb", "netns", NS_B)
    for ns, dev, ip in [(NS_A, "va", A), (NS_B, "vb", B)]:
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def teardown():
    for ns in (NS_A, NS_B):
        sh("ip", "netns", "del", ns, check=False)


# The helpers below run inside a namespace, as `python3 netfault.py <helper> args`.

def helper_echo(port):
    """A UDP echo server (A's service), for at most 10 minutes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((A, int(port)))
    s.settimeout(1.0)
    until = time.monotonic() + 600
    while time.monotonic() < until:
        try:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
        except socket.timeout:
            pass


def helper_listen(port):
    """A TCP listener (A's service) that only completes handshakes, for at most 10 minutes."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((A, int(port)))
    s.listen(4096)
    s.settimeout(1.0)
    until = time.monotonic() + 600
    while time.monotonic() < until:
        try:
            c, _ = s.accept()
            c.close()
        except socket.timeout:
            pass


def helper_connect_rtt(host, port, count):
    """TCP connect times in ms (the handshake's round trip), one per line; -1 for a failed connect."""
    for _ in range(int(count)):
        t = time.perf_counter()
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            print(f"{(time.perf_counter() - t) * 1e3:.4f}")
        except OSError:
            print("-1")


def helper_udp_send(host, port, count, per_second):
    """Sends `count` numbered datagrams at `per_second`, paced in 1 ms slices."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    count, per_second = int(count), float(per_second)
    start = time.monotonic()
    for i in range(count):
        due = start + i / per_second
        while time.monotonic() < due:
            time.sleep(0.0005)
        try:
            s.sendto(i.to_bytes(8, "big"), (host, int(port)))
        except OSError:
            pass


def helper_udp_count(bind, port, seconds):
    """Counts datagrams arriving within `seconds` (stops 0.5 s after the last one)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.bind((bind, int(port)))
    s.settimeout(0.5)
    print("ready", flush=True)
    got, until, seen = 0, time.monotonic() + float(seconds), False
    while time.monotonic() < until:
        try:
            s.recv(64)
            got += 1
            seen = True
        except socket.timeout:
            if seen:
                break
    print(got)


def helper_restore(agent_url, body, threshold_ms):
    """Pings A's UDP echo every 1 ms; POSTs `body` to `agent_url` and prints the ms from that POST to the first
    echo back within `threshold_ms` of being sent (the link back to its baseline). Bounded by 10 s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    threshold = float(threshold_ms) / 1e3
    request = urllib.request.Request(agent_url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"})
    sent = {}
    t0 = time.monotonic()
    urllib.request.urlopen(request, timeout=10).read()
    seq = 0
    while time.monotonic() - t0 < 10:
        now = time.monotonic()
        s.sendto(seq.to_bytes(8, "big"), (A, ECHO_PORT))
        sent[seq] = now
        seq += 1
        deadline = now + 0.001
        while time.monotonic() < deadline:
            try:
                data = s.recv(64)
                n = int.from_bytes(data[:8], "big")
                arrived = time.monotonic()
                if n in sent and arrived - sent[n] <= threshold and sent[n] >= t0:
                    print(f"{(arrived - t0) * 1e3:.2f}")
                    return
            except BlockingIOError:
                time.sleep(0.0001)
    print("-1")


HELPERS = {"echo": helper_echo, "listen": helper_listen, "connect-rtt": helper_connect_rtt, "udp-send": helper_udp_send,
           "udp-count": helper_udp_count, "restore": helper_restore}


def helper(ns, name, *args):
    return in_ns(ns, sys.executable, os.path.abspath(__file__), name, *map(str, args), timeout=300).stdout


def spawn_helper(ns, name, *args):
    return spawn_in(ns, sys.executable, os.path.abspath(__file__), name, *map(str, args))


# The measurement, from the bench's own namespace through `ip netns exec`.

def agent_exec(body):
    out = helper(NS_B, "post", f"http://{A}:{AGENT_PORT}/exec", json.dumps(body))
    return json.loads(out)


def helper_post(url, body):
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"})
    try:
        print(urllib.request.urlopen(request, timeout=30).read().decode())
    except urllib.error.HTTPError as err:
        print(err.read().decode())


HELPERS["post"] = helper_post


def start_fault(command, data):
    answer = agent_exec({"command": command, "data": data, "detach": True})
    assert answer.get("status") == "running", answer
    time.sleep(0.2)
    return answer["job_id"]


def abort():
    answer = helper(NS_B, "post", f"http://{A}:{AGENT_PORT}/abort", json.dumps({"local": True}))
    assert "released" in answer, answer


def quantiles(values):
    values = sorted(values)
    q = lambda p: values[min(len(values) - 1, int(p * len(values)))]
    return q(0.5), q(0.99)


def connect_rtts(count):
    out = helper(NS_B, "connect-rtt", A, LISTEN_PORT, count)
    values = [float(x) for x in out.split()]
    return [v for v in values if v >= 0], sum(1 for v in values if v < 0)


def ping_rtts(count):
    out = in_ns(NS_B, "ping", "-n", "-c", str(count), "-i", "0.01", "-W", "2", A, check=False).stdout
    return [float(m) for m in re.findall(r"time=([\d.]+) ms", out)]


def delay_rows():
    base_tcp, _ = connect_rtts(200)
    base_ping = ping_rtts(200)
    b_tcp, b_ping = quantiles(base_tcp)[0], quantiles(base_ping)[0]
    for delay in (10, 100):
        for jitter_share in (0.0, 0.1):
            jitter = delay * jitter_share
            data = {"delay": f"{delay}ms", "duration": "5m"}
            if jitter:
                data["jitter"] = f"{jitter:g}ms"
            start_fault("net/delay", data)
            count = 200 if delay == 10 else 60
            tcp, failed = connect_rtts(count)
            ping = ping_rtts(count)
            abort()
            asked = f"{delay} ms" + (f" +- {jitter:g} ms" if jitter else "")
            for probe, values, base in (("TCP connect", tcp, b_tcp), ("ping", ping, b_ping)):
                p50, p99 = quantiles(values)
                added = p50 - base
                error = abs(added - delay)
                bound = 0.05 * delay + 0.2
                row(f"delay {asked}: RTT p50 added, by {probe}", f"{added:.2f} ms", asked, f"{base:.3f} ms (no fault)",
                    f"{added / delay:.3f}", "within 5 % + 0.2 ms", "yes" if error <= bound else "**no**",
                    f"{len(values)} samples from B, the delay on A's egress")
                expected_p99 = delay + 0.98 * jitter
                row(f"delay {asked}: RTT p99 added, by {probe}", f"{p99 - base:.2f} ms", f"{expected_p99:.1f} ms",
                    f"{quantiles(base_tcp if probe == 'TCP connect' else base_ping)[1]:.3f} ms (no fault)",
                    f"{(p99 - base) / expected_p99:.3f}", "-", "-", f"{len(values)} samples; failed connects: {failed}")


def loss_rows():
    count, rate = 100_000, 50_000
    def through(percent):
        counter = spawn_helper(NS_B, "udp-count", B, 9100, 60)
        assert counter.stdout.readline().strip() == "ready"
        if percent:
            start_fault("net/loss", {"percent": percent, "duration": "5m", "traffic": {"protocol": "udp"}})
        helper(NS_A, "udp-send", B, 9100, count, rate)
        got = int(counter.stdout.readline())
        counter.wait(timeout=30)
        if percent:
            abort()
        return got
    base = through(0)
    for percent in (1, 10, 50):
        got = through(percent)
        lost = 100.0 * (count - got) / count
        row(f"loss {percent} %: packets lost", f"{lost:.2f} %", f"{percent} %", f"{100.0 * (count - base) / count:.2f} % (no fault)",
            f"{lost / percent:.3f}", "within 1 point", "yes" if abs(lost - percent) <= 1 else "**no**",
            f"{count:,} UDP datagrams A -> B at {rate:,}/s")


def iperf(reverse=False, seconds=5):
    server = spawn_in(NS_B, "iperf3", "-s", "-1", "-B", B)
    time.sleep(0.5)
    args = ["iperf3", "-c", B, "-t", str(seconds), "-J"] + (["-R"] if reverse else [])
    out = in_ns(NS_A, *args, timeout=60).stdout
    server.wait(timeout=30)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


def bandwidth_rows():
    base = iperf()
    for mbit, direction in ((1, "egress"), (10, "egress"), (100, "egress"), (10, "ingress")):
        start_fault("net/bandwidth", {"rate": f"{mbit}mbit", "duration": "5m", "traffic": {"direction": direction}})
        got = iperf(reverse=direction == "ingress")
        abort()
        ratio = got / mbit
        row(f"bandwidth {mbit} Mbit/s {direction}: TCP goodput", f"{got:.2f} Mbit/s", f"{mbit} Mbit/s", f"{base:,.0f} Mbit/s (no fault)",
            f"{ratio:.3f}", "within 5 %", "yes" if abs(ratio - 1) <= 0.05 else "**no**",
            f"iperf3 -t 5 {'-R ' if direction == 'ingress' else ''}A -> B (payload only: headers are the rest)")


def partition_rows():
    start_fault("net/partition", {"duration": "5m", "traffic": {"remote": [B]}})
    counter = spawn_helper(NS_B, "udp-count", B, 9101, 4)
    assert counter.stdout.readline().strip() == "ready"
    helper(NS_A, "udp-send", B, 9101, 10_000, 20_000)
    through = int(counter.stdout.readline())
    counter.wait(timeout=30)
    out = helper(NS_B, "connect-rtt", A, AGENT_PORT, 200)
    exempt = [float(x) for x in out.split()]
    lost = sum(1 for x in exempt if x < 0)
    abort()
    row("partition: packets through", str(through), "0", "10,000 sent", "-", "0", "yes" if through == 0 else "**no**",
        "10,000 UDP datagrams A -> B during a partition from B")
    row("partition: connects to the exempt agent port lost", str(lost), "0", "200 tried", "-", "0", "yes" if lost == 0 else "**no**",
        "TCP connects B -> A's public port during the partition")


def restore_rows():
    for fault, data, threshold in (("partition", {"duration": "5m", "traffic": {"remote": [B]}}, 50),
                                   ("delay 100 ms", {"delay": "100ms", "duration": "5m"}, 20)):
        command = "net/partition" if fault == "partition" else "net/delay"
        times = []
        for _ in range(3):
            start_fault(command, data)
            out = helper(NS_B, "restore", f"http://{A}:{AGENT_PORT}/abort", json.dumps({"local": True}), threshold)
            times.append(float(out.strip()))
        median = statistics.median(times)
        row(f"restore after /abort ({fault})", f"{median:.1f} ms", "-", "-", "-", "< 100 ms", "yes" if 0 <= median < 100 else "**no**",
            f"from the POST /abort to the first UDP echo back within {threshold} ms; median of 3 ({', '.join(f'{t:.1f}' for t in times)})")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_cpu_rows(agent_pid):
    count, rate = 50_000, 10_000
    def run(delayed):
        counter = spawn_helper(NS_B, "udp-count", B, 9102, 30)
        assert counter.stdout.readline().strip() == "ready"
        if delayed:
            start_fault("net/delay", {"delay": "10ms", "duration": "5m", "traffic": {"protocol": "udp"}})
        before, t = cpu_seconds(agent_pid), time.monotonic()
        helper(NS_A, "udp-send", B, 9102, count, rate)
        used, took = cpu_seconds(agent_pid) - before, time.monotonic() - t
        got = int(counter.stdout.readline())
        counter.wait(timeout=30)
        if delayed:
            abort()
        return used / took, got
    idle, _ = run(False)
    busy, got = run(True)
    start_fault("net/delay", {"delay": "10ms", "duration": "5m", "traffic": {"protocol": "udp"}})
    before = cpu_seconds(agent_pid)
    time.sleep(3)
    waiting = (cpu_seconds(agent_pid) - before) / 3
    abort()
    row("delay engine CPU with no packet to hold", f"{waiting:.3f} cores", "-", "-", "-", "-", "-",
        "a 10 ms delay in force, no matching traffic, 3 s (the thread sleeps on the queue's socket)")
    row("delay engine CPU at 10,000 packets/s", f"{busy:.3f} cores", "-", f"{idle:.3f} cores (same traffic, no fault)",
        f"{(busy - idle) * 1e6 / rate:.1f} us/packet", "-", "-", f"{count:,} UDP datagrams A -> B through a 10 ms delay; {got:,} arrived")


def write_doc(table):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "network-faults.md")
    text = open(path).read()
    start, end = "<!-- netfault-fidelity:start -->", "<!-- netfault-fidelity:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        open(path, "w").write(f"{before}{start}\n{table}{end}{after}")


def main():
    if os.geteuid() != 0:
        sys.exit("netfault: needs root (network namespaces)")
    setup()
    agent = None
    helpers = []
    try:
        agent = spawn_in(NS_A, TARSIER, "agent", f"--listen=0.0.0.0:{AGENT_PORT}", "--service-listen=127.0.0.1:18081",
                         "--insecure-no-auth")
        helpers = [spawn_helper(NS_A, "echo", ECHO_PORT), spawn_helper(NS_A, "listen", LISTEN_PORT)]
        for _ in range(100):
            if helper(NS_B, "connect-rtt", A, AGENT_PORT, 1).strip() != "-1":
                break
            time.sleep(0.1)
        agent_pid = int(sh("pgrep", "-f", f"listen=0.0.0.0:{AGENT_PORT}").stdout.split()[0])
        chosen = sys.argv[1:] or ["delay", "loss", "bandwidth", "partition", "restore", "cpu"]
        sections = {"delay": delay_rows, "loss": loss_rows, "bandwidth": bandwidth_rows, "partition": partition_rows,
                    "restore": restore_rows, "cpu": lambda: engine_cpu_rows(agent_pid)}
        for name in chosen:
            print(name, file=sys.stderr)
            sections[name]()
    finally:
        for proc in helpers + ([agent] if agent else []):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        teardown()
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores by `benches/run.sh netfault` (one run):", "",
             "| measure | tarsier | asked | baseline (same run) | ratio | target | met | how |", "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in ROWS]
    table = "\n".join(lines) + "\n"
    print(table)
    if not sys.argv[1:]:
        write_doc(table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in HELPERS:
        HELPERS[sys.argv[1]](*sys.argv[2:])
    else:
        main()
