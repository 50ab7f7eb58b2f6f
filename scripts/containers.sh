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
#   partition "N..." "N..." S   split the swarm with net/partition (TARSIER_NET_FAULTS=1 stacks only): each agent
#                          is told directly, from here, to cut itself off from the other half for S seconds,
#                          the control plane included; Consul is in the first half
#   heal                   /abort every agent directly (the halves cannot flood each other's)
#   wave-from N COUNT      a dedupe wave from agent N must reach exactly COUNT agents
#
# TARSIER_PROJECT names the Compose project (default tarsier), so several stacks can live side by side.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
project="${TARSIER_PROJECT:-tarsier}"

files=(-f "$root/deploy/compose.yaml")
[ "${TARSIER_NET_FAULTS:-0}" = 1 ] && files+=(-f "$root/deploy/compose.netfaults.yaml")
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$project" "${files[@]}" "$@"
  else
    docker-compose -p "$project" "${files[@]}" "$@"
  fi
}
post() { # POST body $2 (JSON) to path $1 of agent number $3; prints the answer (a wave's copies to a cut-off
  # half wait for their timeout before the origin answers)
  curl -s -m 60 -H "Authorization: Bearer $(cat "$root/deploy/.token")" -H "Content-Type: application/json" \
    --data-binary "$2" "http://$(address_of "$(container "$3")"):8080$1"
}
agents() { docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=tarsier" | wc -l; }

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
  partition)
    half_a="$(consul_address)/32"; half_b=""
    for n in $2; do half_a="$half_a\",\"$(address_of "$(container "$n")")/32"; done
    for n in $3; do half_b="${half_b:+$half_b\",\"}$(address_of "$(container "$n")")/32"; done
    body="{\"command\":\"net/partition\",\"detach\":true,\"data\":{\"halves\":[[\"$half_a\"],[\"$half_b\"]],\"cut_control_plane\":true,\"duration\":\"${4:-60}s\"}}"
    for n in $2 $3; do
      answer=$(post /exec "$body" "$n")
      case "$answer" in *'"running"'*) ;; *) echo "agent $n refused the partition: $answer"; exit 1 ;; esac
    done
    echo "partitioned: [consul $2] | [$3]"
    ;;
  heal)
    for n in $(seq 1 "$(agents)"); do post /abort '{"local": true}' "$n" >/dev/null || true; done
    echo "healed"
    ;;
  wave-from)
    body='{"command":"sleep/sleep","data":{"duration":"0s"},"wave":{"remain":10,"buddies":3,"dedupe":true,"report":true}}'
    wave=$(post /exec "$body" "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["wave_id"])')
    reached=0
    for _ in $(seq 1 40); do
      reached=$(curl -s -m 5 -H "Authorization: Bearer $(cat "$root/deploy/.token")" \
        "http://$(address_of "$(container "$2")"):8080/waves/$wave" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("agents_reached", 0))')
      [ "$reached" = "$3" ] && break
      sleep 0.25
    done
    # Settled: still exactly COUNT a moment later (a copy that should not arrive would have by now).
    sleep 1
    reached=$(curl -s -m 5 -H "Authorization: Bearer $(cat "$root/deploy/.token")" \
      "http://$(address_of "$(container "$2")"):8080/waves/$wave" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("agents_reached", 0))')
    [ "$reached" = "$3" ] || { echo "the wave from agent $2 reached $reached agents, not $3"; exit 1; }
    echo "the wave from agent $2 reached $3 agents"
    ;;
  up)
    n="${2:-10}"
    "$root/scripts/image.sh" >/dev/null
    # The token, made as the experiments make it (readable by the agents' user 10001 through the bind mount).
    python3 "$root/scripts/stack.py" token >/dev/null
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
    # Where everything is: each agent's ports, Consul, and Prometheus (also published on a loopback port).
    for id in $(compose ps -q tarsier); do
      docker inspect -f '{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id"
    done | sort -V | while read -r name ip; do
      echo "  ${name#/}  public http://$ip:8080  service http://$ip:8081" >&2
    done
    prometheus_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(compose ps -q prometheus)")
    published=$(compose port prometheus 9090 2>/dev/null || true)
    echo "  consul      http://$consul:8500" >&2
    echo "  prometheus  http://$prometheus_ip:9090${published:+  (published: http://$published)}" >&2
    echo "  alert rules k8s/prometheus/rules.yaml, Grafana dashboard k8s/grafana/tarsier.json (docs/operating.md)" >&2
    ;;
  down)
    compose down -v --remove-orphans >&2
    rm -f "$cut_file"
    ;;
  *)
    echo "usage: scripts/containers.sh up [N] | down | ip N | disconnect N... | reconnect | wait-passing COUNT S | crash N KIND S | partition \"N...\" \"N...\" S | heal | wave-from N COUNT" >&2
    exit 2
    ;;
esac
