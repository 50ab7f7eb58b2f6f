#!/usr/bin/env bash
# nats-server with JetStream, the central log store the log-shipping tests publish to (docs/logs.md).
#
#   scripts/nats.sh install   make sure a nats-server binary exists; prints its path
#
# From PATH, else this machine's Debian release's `nats-server` package, fetched by scripts/debian-package.sh
# and unpacked into .cache/nats-server (nothing installed; a static Go binary). The tests run it with a config of
# their own, on 127.0.0.1, with JetStream's storage in a temp dir, as the user running them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/nats-server"
cached_bin="$cache/root/usr/sbin/nats-server"
log() { echo "nats.sh: $*" >&2; }

find_nats() {
  if command -v nats-server >/dev/null 2>&1 && nats-server --version >/dev/null 2>&1; then command -v nats-server; return 0; fi
  if [ -x "$cached_bin" ] && "$cached_bin" --version >/dev/null 2>&1; then echo "$cached_bin"; return 0; fi
  return 1
}

install() {
  if find_nats; then return 0; fi
  # shellcheck disable=SC1091
  release=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  "$root/scripts/debian-package.sh" "$release" nats-server "$cache/root" || { log "no way to get nats-server"; exit 1; }
  local bin; bin=$(find_nats) || { log "nats-server was unpacked but does not run"; exit 1; }
  log "$("$bin" --version 2>&1)"
  echo "$bin"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
