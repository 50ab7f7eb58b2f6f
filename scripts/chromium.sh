#!/usr/bin/env bash
# Chromium, the browser the console and HTML report tests look at pages in (ARCHITECTURE.md: Tests).
#
#   scripts/chromium.sh install   make sure a chromium binary exists; prints its path
#
# From PATH, else Debian's `chromium` package installed with apt-get (root only: its many libraries make
# unpacking it beside the project impractical). The tests run it headless, with a profile of their own, on
# pages served from 127.0.0.1 or read from disk. Without it the browser tests print `skipped: ...`.
set -euo pipefail
log() { echo "chromium.sh: $*" >&2; }

find_chromium() {
  if command -v chromium >/dev/null 2>&1; then command -v chromium; return 0; fi
  return 1
}

install() {
  if find_chromium; then return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "not root or no apt-get: the browser tests will be skipped"
    return 1
  fi
  (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }) \
    || { log "apt-get could not install chromium: the browser tests will be skipped"; return 1; }
  find_chromium
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
