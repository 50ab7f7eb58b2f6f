#!/usr/bin/env bash
# Prometheus and promtool for tarsier's tests (scenario expectations, alert rules).
#
#   scripts/prometheus.sh install   make sure prometheus and promtool exist; prints the prometheus path
#
# From PATH if both are there; else Debian's `prometheus` package from the machine's own apt sources, fetched with
# `apt-get download` and unpacked into .cache/prometheus (no service is installed or started: the tests start
# their own Prometheus on 127.0.0.1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/prometheus"
cached="$cache/root/usr/bin"

log() { echo "prometheus.sh: $*" >&2; }

find_prometheus() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then command -v prometheus; return 0; fi
  if [ -x "$cached/prometheus" ] && [ -x "$cached/promtool" ]; then echo "$cached/prometheus"; return 0; fi
  return 1
}

install() {
  if find_prometheus; then return 0; fi
  mkdir -p "$cache/debs"
  if ! (cd "$cache/debs" && timeout 300 apt-get download -qq prometheus 2>/dev/null); then
    log "apt-get download failed; updating the package lists once"
    timeout 300 apt-get update -qq || true
    (cd "$cache/debs" && timeout 300 apt-get download -qq prometheus) || { log "cannot download prometheus"; exit 1; }
  fi
  rm -rf "$cache/root" && mkdir -p "$cache/root"
  dpkg-deb -x "$(ls "$cache"/debs/prometheus_*.deb | head -n 1)" "$cache/root"
  local bin; bin=$(find_prometheus) || { log "prometheus was unpacked but is not there"; exit 1; }
  log "$("$bin" --version 2>&1 | sed -n 1p)"
  echo "$bin"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
