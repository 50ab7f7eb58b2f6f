#!/usr/bin/env bash
# xmllint, for the test that validates tarsier's JUnit XML against tests/junit.xsd (ARCHITECTURE.md: Tests).
#
#   scripts/xmllint.sh install   make sure an xmllint exists; prints its path
#
# From PATH, else this machine's Debian release's libxml2-utils, fetched by scripts/debian-package.sh into
# .cache/xmllint (its library, libxml2, is part of the base system).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/xmllint"
cached_bin="$cache/root/usr/bin/xmllint"
log() { echo "xmllint.sh: $*" >&2; }

find_xmllint() {
  if command -v xmllint >/dev/null 2>&1; then command -v xmllint; return 0; fi
  if [ -x "$cached_bin" ] && "$cached_bin" --version >/dev/null 2>&1; then echo "$cached_bin"; return 0; fi
  return 1
}

install() {
  if find_xmllint; then return 0; fi
  # shellcheck disable=SC1091
  release=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  "$root/scripts/debian-package.sh" "$release" libxml2-utils "$cache/root" || { log "no way to get xmllint"; exit 1; }
  local bin; bin=$(find_xmllint) || { log "xmllint was unpacked but does not run"; exit 1; }
  log "$("$bin" --version 2>&1 | sed -n 1p)"
  echo "$bin"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
