#!/usr/bin/env bash
# nginx, the upstream some fault proxy tests put a proxy in front of (ARCHITECTURE.md: Tests).
#
#   scripts/nginx.sh install   make sure an nginx binary exists; prints its path
#
# From PATH, else this machine's Debian release's `nginx` package, fetched by scripts/debian-package.sh and
# unpacked into .cache/nginx (nothing installed; its libraries, pcre2, OpenSSL and zlib, are part of the base
# system). The tests run it with a config of their own, on 127.0.0.1, as the user running them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/nginx"
cached_bin="$cache/root/usr/sbin/nginx"
log() { echo "nginx.sh: $*" >&2; }

find_nginx() {
  if command -v nginx >/dev/null 2>&1 && nginx -v >/dev/null 2>&1; then command -v nginx; return 0; fi
  if [ -x "$cached_bin" ] && "$cached_bin" -v >/dev/null 2>&1; then echo "$cached_bin"; return 0; fi
  return 1
}

install() {
  if find_nginx; then return 0; fi
  # shellcheck disable=SC1091
  release=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  "$root/scripts/debian-package.sh" "$release" nginx "$cache/root" || { log "no way to get nginx"; exit 1; }
  local bin; bin=$(find_nginx) || { log "nginx was unpacked but does not run"; exit 1; }
  log "$("$bin" -v 2>&1)"
  echo "$bin"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
