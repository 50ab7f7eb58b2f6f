#!/usr/bin/env bash
# A multi-node Docker Swarm on one machine, for the experiments that fail a whole node (docs/experiments.md):
# this machine's engine is the manager, and each worker is one more Docker engine in a network namespace of
# its own (and a UTS namespace: its own host name), with its own data root, exec root, socket and cgroup
# parent, on a bridge this script makes with TEST-NET-2 addresses (198.51.100.0/24; refused if this machine
# already routes any of them: the machines here use TEST-NET-1 for their own network). No registry: the images
# the experiments use are moved with `docker save | docker load`. Root only.
#
#   scripts/cluster.sh up [N]        N workers (default 2, at most 8), joined to the swarm, images loaded
#   scripts/cluster.sh down          every worker stopped and removed from the swarm; the namespaces, links,
#                                    bridge, mounts, cgroups and directories removed; the swarm left if `up`
#                                    made it. Leaves nothing behind (tests/docker/experiments.rs checks).
#   scripts/cluster.sh status        the nodes as the manager sees them
#   scripts/cluster.sh docker I ARGS...   the docker CLI against worker I (docker -H unix://...)
#
# Worker I is the namespace tsr-nodeI at 198.51.100.(10+I), reached from the host on the bridge tsr-br0
# (198.51.100.1, the manager's swarm address). Its engine's socket: /run/tarsier-cluster/nodeI/docker.sock.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state=/run/tarsier-cluster
data=/var/lib/tarsier-cluster
bridge=tsr-br0
net=198.51.100
manager_ip=$net.1
made_swarm="$root/.cache/cluster-made-swarm"
images=(tarsier:latest tarsier-busybox:latest tarsier-redis:latest tarsier-netperf:latest)

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, a bridge, engines of its own)"
command -v dockerd >/dev/null || die "no dockerd on this machine"

node_sock() { echo "unix://$state/node$1/docker.sock"; }
node_docker() { local i=$1; shift; docker -H "$(node_sock "$i")" "$@"; }
workers() { ls -d "$state"/node* 2>/dev/null | sed 's/.*node//' | sort -n || true; }

up() {
  local n=${1:-2}
  [[ "$n" =~ ^[1-8]$ ]] || die "up N: 1 to 8 workers"
  [ -z "$(workers)" ] || die "a cluster is up already (scripts/cluster.sh down first)"
  local swarm; swarm=$(docker info -f '{{.Swarm.LocalNodeState}}')
  if [ "$swarm" = active ]; then
    local addr; addr=$(docker info -f '{{.Swarm.NodeAddr}}')
    [ "$addr" = "$manager_ip" ] || die "this engine is in a swarm already, at $addr: workers in namespaces reach the manager at $manager_ip only (leave it first, or scripts/stack.py down)"
  fi
  # The bridge's subnet must be nobody's: an address or a route of this machine in it would be taken over.
  if ip -o addr show | grep -q " $net\." || ip route show | grep -q "$net\."; then
    die "this machine already uses $net.0/24 (ip addr / ip route): the cluster's bridge would take it over"
  fi
  # Every image the workers will run, from this engine (scripts/image.sh builds them; nothing is pulled).
  # (TARSIER_IMAGE_PROFILE=release, as scripts/experiments.sh sets it: the agent from a release build.)
  "$root/scripts/image.sh" $([ "${TARSIER_IMAGE_PROFILE:-}" = release ] && echo --release) >/dev/null
  ip link add "$bridge" type bridge
  ip addr add "$manager_ip/24" dev "$bridge"
  ip link set "$bridge" up
  # Node to node across the bridge is forwarded traffic to this machine's netfilter (br_netfilter), where
  # Docker's FORWARD policy is DROP: without this rule the workers reach the manager but not each other (the
  # overlay's gossip between them timed out, and a task's network took 10 s more to attach on a node).
  # DOCKER-USER is the chain Docker leaves to its users; the rule goes with `down`.
  iptables -I DOCKER-USER -i "$bridge" -o "$bridge" -j ACCEPT
  if [ "$swarm" != active ]; then
    log "docker swarm init on $manager_ip (left again by \`down\`)"
    docker swarm init --advertise-addr "$manager_ip" --listen-addr "$manager_ip:2377" >/dev/null
    mkdir -p "$(dirname "$made_swarm")" && touch "$made_swarm"
  fi
  local token; token=$(docker swarm join-token -q worker)
  for i in $(seq 1 "$n"); do
    local ns=tsr-node$i dir=$state/node$i
    mkdir -p "$dir" "$data/node$i"
    ip netns add "$ns"
    ip link add "tsr-n$i" type veth peer name eth0 netns "$ns"
    ip link set "tsr-n$i" master "$bridge" up
    ip -n "$ns" addr add "$net.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    # It trusts the manager's address for the private registry of provisioning (stack.py registry publishes it
    # there, plain HTTP, on the cluster's own bridge).
    echo "{\"insecure-registries\": [\"$manager_ip:5000\"]}" > "$dir/daemon.json"
    # Its own host name (a UTS namespace) so `docker node ls` tells the workers apart; its own cgroup parent
    # so its containers' cgroups do not meet the manager's. nsenter, not `ip netns exec`: that makes a mount
    # namespace with a fresh /sys, where the engine finds no cgroup mounted ("Devices cgroup isn't mounted").
    nsenter --net="/run/netns/$ns" unshare --uts sh -c "hostname $ns && exec dockerd --config-file $dir/daemon.json \
      --data-root $data/node$i --exec-root $dir/exec --pidfile $dir/docker.pid -H $(node_sock "$i") \
      --cgroup-parent /tarsier-node$i --log-level warn" >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 300); do node_docker "$i" info >/dev/null 2>&1 && break; sleep 0.1; done
    node_docker "$i" info >/dev/null 2>&1 || die "worker $i's engine did not start: $(tail -3 "$dir/dockerd.log")"
    log "worker $i: loading ${images[*]}"
    # A fresh engine has dropped the stream once (EOF on /images/load): tried three times.
    for try in 1 2 3; do
      docker save "${images[@]}" | node_docker "$i" load >/dev/null && break
      [ "$try" = 3 ] && die "worker $i: the images could not be loaded"
      sleep 2
    done
    node_docker "$i" swarm join --token "$token" --advertise-addr "$net.$((10 + i))" "$manager_ip:2377" >/dev/null
  done
  for _ in $(seq 1 300); do
    [ "$(docker node ls --filter role=worker --format '{{.Status}}' | grep -c Ready)" = "$n" ] && break
    sleep 0.2
  done
  status
}

down() {
  for i in $(workers); do
    local ns=tsr-node$i dir=$state/node$i
    # A node left failed (stack.py fail-node stopped from outside): its link up, its containers and engine
    # thawed, so that its engine can stop them.
    ip -n "$ns" link set eth0 up 2>/dev/null || true
    for f in /sys/fs/cgroup/freezer/tarsier-node"$i"/*/freezer.state; do
      [ -e "$f" ] && echo THAWED > "$f" 2>/dev/null || true
    done
    [ -f "$dir/docker.pid" ] && kill -CONT "$(cat "$dir/docker.pid")" $(pgrep -P "$(cat "$dir/docker.pid")") 2>/dev/null || true
    if node_docker "$i" info >/dev/null 2>&1; then
      # Its containers first, while its engine can still stop them.
      node_docker "$i" swarm leave --force >/dev/null 2>&1 || true
      local ids; ids=$(node_docker "$i" ps -aq 2>/dev/null || true)
      [ -z "$ids" ] || node_docker "$i" rm -f $ids >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/docker.pid" ]; then
      local pid; pid=$(cat "$dir/docker.pid")
      kill -CONT "$pid" 2>/dev/null || true   # a frozen engine (node-failure) first thawed
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    # What the engine mounted under its roots (overlays, shm, netns files), deepest first.
    awk -v a="$data/node$i" -v b="$dir" '$2 ~ "^"a || $2 ~ "^"b {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    ip link del "tsr-n$i" 2>/dev/null || true
    for c in /sys/fs/cgroup/*/tarsier-node"$i" /sys/fs/cgroup/tarsier-node"$i"; do
      [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    rm -rf "$dir" "$data/node$i"
  done
  # The workers' nodes, down now, out of the manager's list.
  if [ "$(docker info -f '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]; then
    for id in $(docker node ls -q --filter role=worker); do docker node rm --force "$id" >/dev/null 2>&1 || true; done
  fi
  if [ -f "$made_swarm" ]; then
    docker swarm leave --force >/dev/null 2>&1 || true
    # Asked until gone (at most 30 s): just after leaving, the engine may still take endpoints off it.
    for _ in $(seq 60); do
      docker network ls -q --filter 'name=^docker_gwbridge$' | grep -q . || break
      docker network rm docker_gwbridge >/dev/null 2>&1 || sleep 0.5
    done
    rm -f "$made_swarm"
  fi
  while iptables -D DOCKER-USER -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null; do :; done
  ip link del "$bridge" 2>/dev/null || true
  rmdir "$state" "$data" 2>/dev/null || true
  log "cluster down"
}

status() {
  docker node ls --format '{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}'
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  down) down ;;
  status) status ;;
  docker) shift; i=$1; shift; node_docker "$i" "$@" ;;
  *) die "usage: scripts/cluster.sh up [N] | down | status | docker I ARGS..." ;;
esac
