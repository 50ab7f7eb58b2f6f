#!/usr/bin/env bash
# The container swarm of deploy/compose.yaml.
#
#   scripts/containers.sh up [N]   build the images (scripts/image.sh), make a swarm token if there is none
#                                  (deploy/.token), start Consul, N agents (10 by default), a target and
#                                  Prometheus, and wait until every agent passes its check in Consul
#   scripts/containers.sh down     stop and remove the containers, the network and the volumes
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

case "${1:-}" in
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
    ;;
  *)
    echo "usage: scripts/containers.sh up [N] | down" >&2
    exit 2
    ;;
esac
