#!/usr/bin/env bash
# nats-server with JetStream, the central log store the log-shipping tests publish to (docs/logs.md).
#
#   scripts/nats.sh install   make sure a nats-server binary exists; prints its path
#
# From PATH, else this machine's Debian release's `nats-server` package (a static Go binary), unpacked into
# .cache/nats-server (scripts/unpacked.sh). The tests run it with a config of their own, on 127.0.0.1, with
# JetStream's storage in a temp dir, as the user running them.
set -euo pipefail
tool=nats-server bin_path=usr/sbin/nats-server version=(--version)
# shellcheck source=scripts/unpacked.sh
. "$(dirname "$0")/unpacked.sh"

case "${1:-}" in
  install) unpacked_install "$(debian_release)" nats-server ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
