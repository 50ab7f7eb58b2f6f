#!/usr/bin/env bash
# xmllint, for the test that validates tarsier's JUnit XML against tests/junit.xsd (ARCHITECTURE.md: Tests).
#
#   scripts/xmllint.sh install   make sure an xmllint exists; prints its path
#
# From PATH, else this machine's Debian release's libxml2-utils, unpacked into .cache/xmllint
# (scripts/unpacked.sh; its library, libxml2, is part of the base system).
set -euo pipefail
tool=xmllint bin_path=usr/bin/xmllint version=(--version)
# shellcheck source=scripts/unpacked.sh
. "$(dirname "$0")/unpacked.sh"

case "${1:-}" in
  install) unpacked_install "$(debian_release)" libxml2-utils ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
