#!/usr/bin/env bash
# Consul for tarsier's tests and local runs (docs/operating.md: Consul).
#
#   scripts/consul.sh install   make sure a consul binary exists; prints its path
#   scripts/consul.sh start     start `consul agent -dev` on 127.0.0.1 with free ports; prints its HTTP address
#
# Where the binary comes from, in order: `consul` on PATH; Debian 11 (bullseye)'s `consul` package, unpacked
# into .cache/consul (scripts/unpacked.sh); last, ../shared/debs/consul_*.deb when that exists.
set -euo pipefail
tool=consul bin_path=usr/bin/consul version=(version)
# shellcheck source=scripts/unpacked.sh
. "$(dirname "$0")/unpacked.sh"

install_from_shared() {
  local deb
  deb=$(ls "$root"/../shared/debs/consul_*.deb 2>/dev/null | head -n 1 || true)
  [ -n "$deb" ] || return 1
  log "unpacking $deb"
  rm -rf "$cache/root" && mkdir -p "$cache/root"
  dpkg-deb -x "$deb" "$cache/root"
}

# Debian 12 has no consul package; Debian 11's is the last.
install() { unpacked_install bullseye consul install_from_shared; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {
  local bin; bin=$(install)
  local data; data=$(mktemp -d)
  local http; http=$(free_port)
  "$bin" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -data-dir "$data" \
    -http-port "$http" -dns-port -1 -grpc-port -1 -serf-lan-port "$(free_port)" -serf-wan-port "$(free_port)" \
    -server-port "$(free_port)" >"$data/consul.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$http/v1/status/leader" 2>/dev/null | grep -q ':'; then
      log "consul dev agent pid $pid, log $data/consul.log"
      echo "127.0.0.1:$http"
      return 0
    fi
    sleep 0.1
  done
  log "consul did not elect itself leader; log:"; cat "$data/consul.log" >&2; kill "$pid" || true; exit 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  *) echo "usage: $0 install|start" >&2; exit 2 ;;
esac
