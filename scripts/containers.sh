#!/usr/bin/env bash
# The container swarm of deploy/compose.yaml.
#
#   scripts/containers.sh up [N]   build the images (scripts/image.sh), make a swarm token if there is none
#                                  (deploy/.token), start Consul, N agents (10 by default), a target and
#                                  Prometheus, and wait until every agent passes its check in Consul
#   scripts/containers.sh down     stop and remove the containers, the network and the volumes
#
# For scenarios that drive the stack (their `run:` steps), agents named by their number (1..N):
#   ip N                   the agent's address on the swarm network
#   disconnect N...        cut agents off the network (their addresses are kept for reconnect)
#   reconnect              put every cut-off agent back, with the address it registered in Consul
#   wait-passing COUNT S   wait up to S seconds until exactly COUNT agents pass their check in Consul
#   crash N KIND S         make agent N die (segfault, exit, panic, abort), then wait up to S seconds until
#                          its container has restarted and the agent passes in Consul again
#
# TARSIER_PROJECT names the Compose project (default tarsier), so several stacks can live side by side.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
project="${TARSIER_PROJECT:-tarsier}"

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$project" -f "$root/deploy/compose.yaml" "$@"
  else
    docker-compose -p "$project" -f "$root/deploy/compose.yaml" "$@"
  fi
}

container() { # the container of agent number $1
  docker ps -a -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=tarsier" --filter "label=com.docker.compose.container-number=$1"
}
address_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
consul_address() {
  address_of "$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=consul")"
}
passing() {
  python3 - "$(consul_address)" <<'PY' 2>/dev/null || echo 0
import json, sys, urllib.request
print(len(json.load(urllib.request.urlopen(f"http://{sys.argv[1]}:8500/v1/health/service/tarsier?passing", timeout=2))))
PY
}
network="${project}_swarm"
cut_file="$root/deploy/.cut-$project"

case "${1:-}" in
  ip) address_of "$(container "$2")" ;;
  disconnect)
    shift
    for n in "$@"; do
      c=$(container "$n")
      echo "$c $(address_of "$c")" >> "$cut_file"
      docker network disconnect "$network" "$c"
    done
    echo "cut off: $*"
    ;;
  reconnect)
    [ -f "$cut_file" ] || { echo "nothing is cut off"; exit 0; }
    while read -r c ip; do docker network connect --ip "$ip" "$network" "$c"; done < "$cut_file"
    rm -f "$cut_file"
    echo "reconnected"
    ;;
  wait-passing)
    want=$2; deadline=$((SECONDS + ${3:-60}))
    while [ "$(passing)" != "$want" ]; do
      [ "$SECONDS" -lt "$deadline" ] || { echo "$(passing) passing, not $want"; exit 1; }
      sleep 0.5
    done
    echo "$want passing"
    ;;
  crash)
    n=$2; kind=$3; deadline=$((SECONDS + ${4:-30}))
    c=$(container "$n"); before=$(docker inspect -f '{{.RestartCount}}' "$c")
    body="command: faults/$kind"$'\n'"data: {delay: 0s}"$'\n'
    [ "$kind" = exit ] && body="command: faults/exit"$'\n'"data: {code: 3, delay: 0s}"$'\n'
    curl -s -m 5 -H "Authorization: Bearer $(cat "$root/deploy/.token")" -H "Content-Type: application/yaml" --data-binary "$body" \
      "http://$(address_of "$c"):8080/exec" >/dev/null || true
    until [ "$(docker inspect -f '{{.RestartCount}}' "$c")" -gt "$before" ] \
        && curl -s -m 1 -o /dev/null "http://$(address_of "$c"):8081/health" \
        && python3 - "$(consul_address)" "$(address_of "$c")" <<'PY' 2>/dev/null
import json, sys, urllib.request
entries = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}:8500/v1/health/service/tarsier?passing", timeout=2))
sys.exit(0 if any(e["Service"]["Address"] == sys.argv[2] for e in entries) else 1)
PY
    do
      [ "$SECONDS" -lt "$deadline" ] || { echo "agent $n did not come back within ${4:-30} s"; exit 1; }
      sleep 0.2
    done
    echo "agent $n: $kind, restarted and passing in Consul"
    ;;
  up)
    n="${2:-10}"
    "$root/scripts/image.sh" >/dev/null
    token="$root/deploy/.token"
    if [ ! -s "$token" ]; then
      head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token"
    fi
    # The agents run as user 10001 and read the token through a bind mount.
    chmod 0644 "$token"
    compose up -d --scale "tarsier=$n" >&2
    consul=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(compose ps -q consul)")
    for _ in $(seq 1 120); do
      passing=$(python3 - "$consul" <<'PY' 2>/dev/null || echo 0
import json, sys, urllib.request
print(len(json.load(urllib.request.urlopen(f"http://{sys.argv[1]}:8500/v1/health/service/tarsier?passing", timeout=2))))
PY
)
      [ "$passing" -ge "$n" ] && break
      sleep 1
    done
    [ "$passing" -ge "$n" ] || { echo "containers.sh: only $passing of $n agents are healthy in Consul" >&2; exit 1; }
    echo "containers.sh: $n agents healthy in Consul at http://$consul:8500; token in deploy/.token" >&2
    ;;
  down)
    compose down -v --remove-orphans >&2
    rm -f "$cut_file"
    ;;
  *)
    echo "usage: scripts/containers.sh up [N] | down | ip N | disconnect N... | reconnect | wait-passing COUNT S | crash N KIND S" >&2
    exit 2
    ;;
esac
