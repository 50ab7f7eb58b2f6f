#!/usr/bin/env bash
# nginx, the upstream some fault proxy tests put a proxy in front of (ARCHITECTURE.md: Tests).
#
#   scripts/nginx.sh install   make sure an nginx binary exists; prints its path
#
# From PATH, else this machine's Debian release's `nginx` package, unpacked into .cache/nginx
# (scripts/unpacked.sh; its libraries, pcre2, OpenSSL and zlib, are part of the base system). The tests run it
# with a config of their own, on 127.0.0.1, as the user running them.
set -euo pipefail
tool=nginx bin_path=usr/sbin/nginx version=(-v)
# shellcheck source=scripts/unpacked.sh
. "$(dirname "$0")/unpacked.sh"

case "${1:-}" in
  install) unpacked_install "$(debian_release)" nginx ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
