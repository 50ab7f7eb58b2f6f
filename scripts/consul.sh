#!/usr/bin/env bash
# Consul for tarsier's tests and local runs (docs/operating.md: Consul).
#
#   scripts/consul.sh install   make sure a consul binary exists; prints its path
#   scripts/consul.sh start     start `consul agent -dev` on 127.0.0.1 with free ports; prints its HTTP address
#
# Where the binary comes from, in order: `consul` on PATH; Debian 11 (bullseye)'s `consul` package, fetched by
# scripts/debian-package.sh and unpacked into .cache/consul; last, ../shared/debs/consul_*.deb when that exists.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/consul"
cached_bin="$cache/root/usr/bin/consul"

log() { echo "consul.sh: $*" >&2; }

find_consul() {
  if command -v consul >/dev/null 2>&1 && consul version >/dev/null 2>&1; then command -v consul; return 0; fi
  if [ -x "$cached_bin" ] && "$cached_bin" version >/dev/null 2>&1; then echo "$cached_bin"; return 0; fi
  return 1
}

unpack() {
  rm -rf "$cache/root" && mkdir -p "$cache/root"
  dpkg-deb -x "$1" "$cache/root"
}

install_from_bullseye() {
  "$root/scripts/debian-package.sh" bullseye consul "$cache/root"
}

install_from_shared() {
  local deb
  deb=$(ls "$root"/../shared/debs/consul_*.deb 2>/dev/null | head -n 1 || true)
  [ -n "$deb" ] || return 1
  log "unpacking $deb"
  unpack "$deb"
}

install() {
  if find_consul; then return 0; fi
  mkdir -p "$cache"
  install_from_bullseye || install_from_shared || { log "no way to get consul"; exit 1; }
  local bin; bin=$(find_consul) || { log "consul was unpacked but does not run"; exit 1; }
  log "$("$bin" version | sed -n 1p)"
  echo "$bin"
}

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
