#!/usr/bin/env bash
# Prometheus and promtool for tarsier's tests (scenario expectations, alert rules).
#
#   scripts/prometheus.sh install   make sure prometheus and promtool exist; prints the prometheus path
#
# From PATH if both are there; else this machine's Debian release's `prometheus` package, unpacked into
# .cache/prometheus (scripts/unpacked.sh; no service is installed or started: the tests start their own
# Prometheus on 127.0.0.1).
set -euo pipefail
tool=prometheus bin_path=usr/bin/prometheus version=(--version) also=(promtool)
# shellcheck source=scripts/unpacked.sh
. "$(dirname "$0")/unpacked.sh"

case "${1:-}" in
  install) unpacked_install "$(debian_release)" prometheus ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
