#!/usr/bin/env python3
"""The same tarsier agent as N Docker containers, N LXC containers or N KVM micro-VMs on this machine, for
virtualization-density (docs/experiments.md). Each measuring command prints progress on stderr and ONE JSON
object as its last line of stdout, which the scenario's `run:` step reads. Root only (LXC, /dev/kvm).

  virt.py install                    Debian's qemu-system-x86 and lxc (apt-get, as scripts/test.sh installs
                                     its tools), Debian's kernel (linux-image-amd64's, unpacked: its vmlinux
                                     for a PVH boot and its virtio modules), and from tarsier:latest (made by
                                     scripts/image.sh) the root file system the containers share read-only and
                                     the micro-VMs' initramfs; under .cache/virt/, made again when the image
                                     changed
  virt.py run --tech docker|lxc|kvm --instances N [--cpu-load 50 --seconds 10 --boot-timeout 120]
                                     start N agents at once; when every one answers /health, hold them and spin
                                     one thread at --cpu-load percent of a core in each for --seconds; stop them
      -> {"instances", "ran": how many answered, "seconds": start -> the last one healthy, "first_s",
          "memory_per_instance_mib": the PSS of its host processes (a container's, with the runtime's
          process beside it: Docker's containerd-shim, LXC's monitor; a VM's qemu). Not this machine's
          MemAvailable: it moved by more than a few agents hold between two looks (-95 MiB with 4 started),
          "cpu_asked_mean", "cpu_got_mean": cores each instance's host threads asked for (running or runnable)
          and got while all spun (/proc/TID/schedstat: a VM's vCPU and qemu threads, a container's threads),
          "cpu_fraction_mean": what the agents themselves measured}
      A technology that cannot run here is not an error of the run: it prints {"ran": 0, "error": why},
      with the error as the tool gave it, and the table shows no figure for it.
  virt.py down                       stop every instance this script started (also after a failed run)

Every instance shares this machine's network (Docker --network host, LXC lxc.net.0.type none) and listens on
127.0.0.1 only, except the VMs, which have their own kernel and network: QEMU's user-mode network forwards
127.0.0.1's ports to them. Ports 19100+I (the agent) and 19300+I (its service port) for instance I.
"""

import argparse
import glob
import json
import lzma
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import TOKEN, docker, make_token, schedstat  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache", "virt")
RUN = "/run/tarsier-virt"
IMAGE = "tarsier:latest"
PREFIX = "tarsier-virt"
AGENT_PORT, SERVICE_PORT = 19100, 19300
MAX_INSTANCES = 64
# The modules a micro-VM's kernel needs for its network card (virtio over MMIO), in the order they load.
VIRTIO_MODULES = ["drivers/virtio/virtio.ko", "drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio_mmio.ko",
                  "net/core/failover.ko", "drivers/net/net_failover.ko", "drivers/net/virtio_net.ko"]
VM_MEMORY = "256M"
# The micro-VM's PID 1: mounts, its network card's modules, QEMU's user-mode network, then the agent.
VM_INIT = """#!/virt/busybox sh
B=/virt/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in /virt/modules/*.ko; do $B insmod "$m"; done
$B ip link set lo up
$B ip link set eth0 up
$B ip addr add 10.0.2.15/24 dev eth0
$B ip route add default via 10.0.2.2
$B chown 10001:10001 /virt/token /var/lib/tarsier
exec $B setuidgid 10001:10001 /usr/local/bin/tarsier agent --listen=0.0.0.0:8080 --service-listen=0.0.0.0:8081 \\
  --token-file=/virt/token --log-format=json
"""


def log(text):
    print(f"virt.py: {text}", file=sys.stderr, flush=True)


def sh(*args, timeout=600, check=True):
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise SystemExit(f"virt.py: {' '.join(args)}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout.strip()


# ---------------------------------------------------------------------------------------------- install

def install(_args):
    if os.geteuid() != 0:
        raise SystemExit("virt.py: install needs root (apt-get, LXC, /dev/kvm)")
    if not shutil.which("qemu-system-x86_64") or not shutil.which("lxc-start"):
        log("installing Debian's qemu-system-x86 and lxc")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        packages = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "qemu-system-x86", "lxc"]
        if subprocess.run(packages, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            subprocess.run(packages, env=env, check=True, capture_output=True, timeout=900)
    os.makedirs(CACHE, exist_ok=True)
    kernel()
    # TARSIER_IMAGE_PROFILE=release (scripts/experiments.sh): the agent from a release build, as stack.py.
    release = ["--release"] if os.environ.get("TARSIER_IMAGE_PROFILE") == "release" else []
    subprocess.run([os.path.join(ROOT, "scripts", "image.sh"), *release], check=True, stdout=subprocess.DEVNULL)
    rootfs()
    print(CACHE)


def kernel():
    """Debian's kernel: vmlinux (the ELF inside vmlinuz, booted by QEMU through PVH with no decompressor)
    and the virtio modules, from the package linux-image-amd64 depends on."""
    if os.path.exists(os.path.join(CACHE, "vmlinux")):
        return
    package = next((line.split()[-1] for line in sh("apt-cache", "depends", "linux-image-amd64").splitlines()
                    if "Depends: linux-image-" in line), None)
    if package is None:
        raise SystemExit("virt.py: apt-cache names no kernel for linux-image-amd64")
    work = os.path.join(CACHE, "kernel-work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    log(f"fetching Debian's {package}")
    subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True, timeout=600)
    deb = glob.glob(os.path.join(work, "*.deb"))[0]
    sh("dpkg-deb", "-x", deb, os.path.join(work, "root"))
    vmlinuz = glob.glob(os.path.join(work, "root", "boot", "vmlinuz-*"))[0]
    data = open(vmlinuz, "rb").read()
    start = data.find(b"\xfd7zXZ\x00")  # Debian's kernels are XZ-compressed (CONFIG_KERNEL_XZ)
    if start < 0:
        raise SystemExit(f"virt.py: {vmlinuz} holds no XZ stream")
    vmlinux = lzma.LZMADecompressor().decompress(data[start:])
    modules = os.path.join(CACHE, "modules")
    os.makedirs(modules, exist_ok=True)
    tree = glob.glob(os.path.join(work, "root", "lib", "modules", "*", "kernel"))[0]
    for i, module in enumerate(VIRTIO_MODULES):
        shutil.copy(os.path.join(tree, module), os.path.join(modules, f"{i}-{os.path.basename(module)}"))
    with open(os.path.join(CACHE, "vmlinux"), "wb") as f:
        f.write(vmlinux)
    shutil.rmtree(work)


def rootfs():
    """tarsier:latest's file system (docker export), shared read-only by the LXC containers, and the micro-VMs'
    initramfs: the same files, busybox (Debian's busybox-static, as image.sh unpacks it) and the modules."""
    image_id = docker("image", "inspect", "-f", "{{.Id}}", IMAGE)
    stamp = os.path.join(CACHE, "rootfs.id")
    if os.path.exists(stamp) and open(stamp).read() == image_id:
        return
    fs = os.path.join(CACHE, "rootfs")
    shutil.rmtree(fs, ignore_errors=True)
    os.makedirs(fs)
    cid = docker("create", IMAGE)
    try:
        export = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", fs], stdin=export.stdout, check=True)
        export.wait()
    finally:
        docker("rm", cid, check=False)
    # What the read-only containers mount over: their token and two writable directories.
    os.makedirs(os.path.join(fs, "run"), exist_ok=True)
    open(os.path.join(fs, "run", "token"), "w").close()
    initrd = os.path.join(CACHE, "initrd")
    shutil.rmtree(initrd, ignore_errors=True)
    shutil.copytree(fs, initrd, symlinks=True)
    os.makedirs(os.path.join(initrd, "virt"))
    shutil.copy(os.path.join(ROOT, ".cache", "busybox-root", "bin", "busybox"), os.path.join(initrd, "virt"))
    shutil.copytree(os.path.join(CACHE, "modules"), os.path.join(initrd, "virt", "modules"))
    with open(os.path.join(initrd, "init"), "w") as f:
        f.write(VM_INIT)
    os.chmod(os.path.join(initrd, "init"), 0o755)
    cpio(initrd, os.path.join(CACHE, "initrd.cpio"))
    shutil.rmtree(initrd)
    with open(stamp, "w") as f:
        f.write(image_id)


def cpio(directory, out):
    """An uncompressed newc archive of `directory` (busybox's cpio: nothing else to install)."""
    busybox = os.path.join(ROOT, ".cache", "busybox-root", "bin", "busybox")
    names = subprocess.run(["find", "."], cwd=directory, capture_output=True, check=True).stdout
    with open(out, "wb") as f:
        subprocess.run([busybox, "cpio", "-o", "-H", "newc"], cwd=directory, input=names, stdout=f,
                       stderr=subprocess.DEVNULL, check=True)


# ---------------------------------------------------------------------------------------------- instances

class Instance:
    """One agent, however it is isolated: started, asked, measured, stopped."""

    def __init__(self, tech, index):
        self.tech, self.index = tech, index
        self.name = f"{PREFIX}-{tech}-{index}"
        self.agent = f"http://127.0.0.1:{AGENT_PORT + index}"
        self.service = f"http://127.0.0.1:{SERVICE_PORT + index}"
        self.pid = None  # the qemu process of a VM
        self.cid = None  # the Docker container's id, as `docker run` gives it

    def start(self):
        agent_flags = [f"--listen=127.0.0.1:{AGENT_PORT + self.index}",
                       f"--service-listen=127.0.0.1:{SERVICE_PORT + self.index}", "--log-format=json"]
        if self.tech == "docker":
            self.cid = docker("run", "-d", "--pull", "never", "--name", self.name, "--network", "host",
                   "-v", f"{TOKEN}:/run/secrets/tarsier_token:ro", IMAGE, "agent", *agent_flags,
                   "--token-file=/run/secrets/tarsier_token")
        elif self.tech == "lxc":
            path = os.path.join(RUN, "lxc", self.name)
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "config"), "w") as f:
                f.write(lxc_config(self.name, agent_flags))
            sh("lxc-start", "-n", self.name, "-P", os.path.join(RUN, "lxc"), "-d", timeout=120)
        else:
            log_file = os.path.join(RUN, f"{self.name}.log")
            errors = open(log_file + ".err", "w")
            forward = (f"user,id=n0,hostfwd=tcp:127.0.0.1:{AGENT_PORT + self.index}-:8080,"
                       f"hostfwd=tcp:127.0.0.1:{SERVICE_PORT + self.index}-:8081")
            process = subprocess.Popen(
                ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-smp", "1",
                 "-m", VM_MEMORY, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                 "-serial", f"file:{log_file}", "-kernel", os.path.join(CACHE, "vmlinux"),
                 "-initrd", os.path.join(RUN, "initrd.cpio"), "-append", "console=ttyS0 quiet panic=-1",
                 "-netdev", forward, "-device", "virtio-net-device,netdev=n0"],
                stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
            errors.close()
            self.pid = process.pid
            with open(os.path.join(RUN, f"{self.name}.pid"), "w") as f:
                f.write(str(self.pid))

    def healthy(self):
        try:
            with urllib.request.urlopen(f"{self.service}/health", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def failed(self):
        """Why it cannot answer any more, in QEMU's own words: its qemu exited, or KVM stopped the guest (on an
        internal error QEMU pauses the VM and stays up, printing the error and the guest's registers)."""
        if self.tech != "kvm" or self.pid is None:
            return None
        said = open(os.path.join(RUN, f"{self.name}.log.err")).read().strip().splitlines()
        stopped = [line for line in said if "KVM internal error" in line or "emulation failure" in line]
        if stopped:
            code = next((line for line in said if line.startswith("Code=")), "")
            # The instruction KVM could not run: its first bytes, from the one QEMU marks <..>.
            at = " ".join(code[code.find("<"):].split()[:6]) if "<" in code else ""
            return " ".join(stopped) + (f" at guest code {at}" if at else "")
        try:
            finished, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            finished = self.pid
        if finished == 0:
            return None
        return " / ".join(said[:3]) or "qemu exited"

    def exec(self, body, timeout):
        request = urllib.request.Request(f"{self.agent}/exec", data=body.encode(), method="POST", headers={
            "Authorization": f"Bearer {open(TOKEN).read().strip()}", "Content-Type": "application/yaml"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())

    def threads(self):
        """The host threads that run this instance (its cgroup's, or its qemu's)."""
        if self.tech == "kvm":
            return [int(t) for t in os.listdir(f"/proc/{self.pid}/task")] if self.pid else []
        tasks = self.cgroup("cpu", "tasks")
        return [int(t) for t in open(tasks).read().split()] if tasks else []

    def cgroup(self, controller, name):
        """A file of the container's cgroup (v1: Docker's cgroupfs driver, LXC's payload), or None."""
        group = f"docker/{self.cid}" if self.tech == "docker" else f"lxc.payload.{self.name}"
        path = f"/sys/fs/cgroup/{controller}/{group}/{name}"
        return path if os.path.exists(path) else None

    def processes(self):
        """The host processes this instance costs: its own (its cgroup's) and the one its runtime keeps beside
        it (Docker's containerd-shim, LXC's monitor: the parent of its PID 1), or a VM's qemu."""
        if self.tech == "kvm":
            return [self.pid] if self.pid else []
        procs = self.cgroup("memory", "cgroup.procs")
        pids = [int(p) for p in open(procs).read().split()] if procs else []
        if self.tech == "docker":
            init = int(docker("inspect", "-f", "{{.State.Pid}}", self.name, check=False) or 0)
        else:
            init = int(sh("lxc-info", "-n", self.name, "-P", os.path.join(RUN, "lxc"), "-p", "-H", check=False) or 0)
        helper = parent_of(init) if init else None
        return pids + ([helper] if helper else [])

    def memory(self):
        """Its processes' proportional set size (shared pages split among those sharing them), in bytes."""
        return sum(pss(pid) for pid in self.processes())


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def lxc_config(name, agent_flags):
    """An application container: the agent is its PID 1 (user 10001), on the shared read-only root with a
    tmpfs for what it writes, this machine's network (like Docker's --network host), no console."""
    command = " ".join(["/usr/local/bin/tarsier", "agent", *agent_flags, "--token-file=/run/token"])
    return f"""lxc.uts.name = {name}
lxc.rootfs.path = dir:{os.path.join(CACHE, "rootfs")}
lxc.rootfs.options = ro
lxc.net.0.type = none
lxc.mount.auto = proc:mixed sys:ro
lxc.mount.entry = tmpfs tmp tmpfs defaults 0 0
lxc.mount.entry = tmpfs var/lib/tarsier tmpfs defaults,uid=10001,gid=10001 0 0
lxc.mount.entry = {TOKEN} run/token none bind,ro 0 0
lxc.apparmor.profile = unconfined
lxc.init.uid = 10001
lxc.init.gid = 10001
lxc.init.cmd = {command}
lxc.console.path = none
lxc.tty.max = 0
lxc.pty.max = 0
lxc.log.file = {os.path.join(RUN, "lxc", name, "log")}
lxc.log.level = WARN
"""


# KVM stops a guest this machine cannot run at the same instruction every time, after a slow boot (about 50
# s for one VM; past --boot-timeout for 16 on two cores): the first failure of this boot is remembered, so the
# other points of a sweep say the same at once. Not across a reboot, nor another kernel or QEMU.
KVM_FAILURE = os.path.join(CACHE, "kvm-failure.json")


def machine_now():
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    return {"boot_id": boot, "kernel": os.uname().release, "qemu": sh("qemu-system-x86_64", "--version").splitlines()[0],
            "guest": os.path.getsize(os.path.join(CACHE, "vmlinux"))}


def remember_kvm_failure(why):
    with open(KVM_FAILURE, "w") as f:
        json.dump({**machine_now(), "error": why, "at": time.strftime("%H:%M:%S")}, f)


def kvm_cannot_run():
    """The error of the first micro-VM KVM stopped since this machine booted, or None."""
    try:
        with open(KVM_FAILURE) as f:
            known = json.load(f)
    except (OSError, ValueError):
        return None
    if {key: known.get(key) for key in machine_now()} != machine_now():
        return None
    log(f"kvm: the first micro-VM of this boot (at {known['at']}) was stopped by KVM; every one stops there")
    return known["error"]


def vm_initrd():
    """The initramfs with the swarm token appended as one more archive (the kernel unpacks them in turn),
    private to root: the token is never on a command line or in the cache."""
    os.makedirs(RUN, mode=0o700, exist_ok=True)
    extra = os.path.join(RUN, "token-root")
    os.makedirs(os.path.join(extra, "virt"), exist_ok=True)
    shutil.copy(TOKEN, os.path.join(extra, "virt", "token"))
    cpio(extra, os.path.join(RUN, "token.cpio"))
    shutil.rmtree(extra)
    out = os.path.join(RUN, "initrd.cpio")
    with open(out, "wb") as f:
        os.chmod(out, 0o600)
        for part in (os.path.join(CACHE, "initrd.cpio"), os.path.join(RUN, "token.cpio")):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, f)


def run(args):
    if os.geteuid() != 0:
        raise SystemExit("virt.py: needs root (LXC, /dev/kvm)")
    if not os.path.exists(os.path.join(CACHE, "rootfs.id")):
        raise SystemExit("virt.py: nothing installed: scripts/virt.py install first")
    make_token()
    down(None)
    os.makedirs(RUN, mode=0o700, exist_ok=True)
    if args.tech == "kvm":
        known = kvm_cannot_run()
        if known:
            log(f"kvm: {known}")
            print(json.dumps({"tech": "kvm", "instances": args.instances, "ran": 0, "error": known}))
            return
        vm_initrd()
    instances = [Instance(args.tech, i) for i in range(args.instances)]
    ready = {}
    try:
        started = time.time()
        with ThreadPoolExecutor(max_workers=min(16, len(instances))) as pool:
            list(pool.map(lambda instance: instance.start(), instances))
        deadline = time.monotonic() + args.boot_timeout
        # One instance the technology cannot run is enough: none of them will (the same files, the same tool).
        failure = None
        while len(ready) < len(instances) and failure is None and time.monotonic() < deadline:
            for instance in (i for i in instances if i.index not in ready):
                if instance.healthy():
                    ready[instance.index] = time.time()
                elif (failure := instance.failed()) is not None:
                    break
            time.sleep(0.02)
        if len(ready) < len(instances):
            why = failure or f"no answer to /health within {args.boot_timeout:.0f} s"
            if failure and args.tech == "kvm" and "KVM internal error" in failure:
                remember_kvm_failure(failure)
            log(f"{args.tech}: {len(ready)} of {len(instances)} answered: {why}")
            print(json.dumps({"tech": args.tech, "instances": len(instances), "ran": len(ready), "error": why}))
            return
        time.sleep(1)  # settled: what each holds once it answers
        memory = [instance.memory() for instance in instances]
        spin = f"command: heavy_load/spin_cpu\ndata: {{duration: {args.seconds}s, load: {args.cpu_load}, threads: 1}}\n"
        with ThreadPoolExecutor(max_workers=len(instances)) as pool:
            answers = pool.map(lambda instance: instance.exec(spin, args.seconds + 60), instances)
            # A window inside every spin (they start within a moment of each other).
            time.sleep(min(3, args.seconds / 4))
            threads = {instance.index: instance.threads() for instance in instances}
            start = {i: schedstat(tids) for i, tids in threads.items()}
            window_started = time.monotonic()
            time.sleep(max(1, args.seconds / 2))
            end = {i: schedstat(tids) for i, tids in threads.items()}
            window_ns = (time.monotonic() - window_started) * 1e9
            fractions = [answer["result"]["cpu_fraction"] for answer in answers]
    finally:
        down(None)
    got = [(end[i][0] - start[i][0]) / window_ns for i in threads]
    asked = [((end[i][0] - start[i][0]) + (end[i][1] - start[i][1])) / window_ns for i in threads]
    mib = 2 ** 20
    out = {"tech": args.tech, "instances": len(instances), "ran": len(ready),
           "seconds": round(max(ready.values()) - started, 3), "first_s": round(min(ready.values()) - started, 3),
           "memory_per_instance_mib": round(statistics.mean(memory) / mib, 1),
           "cpu_asked_mean": round(statistics.mean(asked), 4), "cpu_got_mean": round(statistics.mean(got), 4),
           "cpu_fraction_mean": round(statistics.mean(fractions), 4)}
    log(f"{args.tech} x {len(instances)}: all healthy in {out['seconds']} s, {out['memory_per_instance_mib']} MiB "
        f"each, CPU got {out['cpu_got_mean']} of {args.cpu_load / 100} asked")
    print(json.dumps(out))


def down(_args):
    """Stops every instance this script started, whatever state a run left them in."""
    for name in docker("ps", "-aq", "--filter", f"name=^{PREFIX}-docker-", check=False).split():
        docker("rm", "-f", name, check=False)
    lxc_path = os.path.join(RUN, "lxc")
    for config in glob.glob(os.path.join(lxc_path, "*", "config")):
        name = os.path.basename(os.path.dirname(config))
        subprocess.run(["lxc-stop", "-n", name, "-P", lxc_path, "-k"], capture_output=True, timeout=60)
    for pidfile in glob.glob(os.path.join(RUN, "*.pid")):
        try:
            os.killpg(int(open(pidfile).read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    # LXC leaves a container's cgroups behind when its start fails half-way (lxc.monitor.NAME).
    for cgroup in glob.glob(f"/sys/fs/cgroup/*/lxc.*.{PREFIX}-*"):
        subprocess.run(["find", cgroup, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";"], capture_output=True)
    shutil.rmtree(RUN, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install").set_defaults(run=install)
    p = commands.add_parser("run")
    p.add_argument("--tech", choices=["docker", "lxc", "kvm"], required=True)
    p.add_argument("--instances", type=int, required=True)
    p.add_argument("--cpu-load", type=int, default=50)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--boot-timeout", type=float, default=120)
    p.set_defaults(run=run)
    commands.add_parser("down").set_defaults(run=down)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 1 <= getattr(args, "instances", 1) <= MAX_INSTANCES:
        parser.error(f"--instances: 1 to {MAX_INSTANCES}")
    if not 1 <= getattr(args, "cpu_load", 50) <= 100 or not 1 <= getattr(args, "seconds", 10) <= 600:
        parser.error("--cpu-load: 1 to 100; --seconds: 1 to 600")
    if not 1 <= getattr(args, "boot_timeout", 1) <= 1800:
        parser.error("--boot-timeout: 1 to 1800")
    args.run(args)


if __name__ == "__main__":
    main()
