# shellcheck shell=bash
# Sourced by the scripts that fetch a server or tool the tests need (nginx.sh, nats.sh, xmllint.sh,
# prometheus.sh, consul.sh): the program from PATH, else one unpacked from a Debian package into
# .cache/NAME/root by scripts/debian-package.sh (nothing installed system-wide). Each script sets:
#
#   tool=NAME            its directory, .cache/NAME (log lines name the calling script)
#   bin_path=usr/sbin/X  where the package puts the program, under the unpacked root
#   version=(--version)  the arguments that make the program print its version (and prove it runs)
#   also=(promtool)      optional: programs that must be there beside it
#
# and calls `unpacked_install RELEASE PACKAGE`, which prints the program's path or exits 1 saying why.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/$tool"
cached_bin="$cache/root/$bin_path"
[ -n "${also+set}" ] || also=()

log() { echo "$(basename "$0"): $*" >&2; }

# This machine's Debian release (bookworm where /etc/os-release does not say).
debian_release() {
  # shellcheck disable=SC1091
  (. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
}

# Whether every program of `also` is there: on PATH, or beside the unpacked program (with an argument).
also_there() {
  local other
  for other in "${also[@]}"; do
    if [ $# -eq 0 ]; then command -v "$other" >/dev/null 2>&1 || return 1; else [ -x "$1/$other" ] || return 1; fi
  done
}

# The program's path when it runs (and `also` is there beside it): from PATH first, else the unpacked one.
unpacked_find() {
  local name; name=$(basename "$bin_path")
  if command -v "$name" >/dev/null 2>&1 && "$name" "${version[@]}" >/dev/null 2>&1 && also_there; then
    command -v "$name"; return 0
  fi
  if [ -x "$cached_bin" ] && "$cached_bin" "${version[@]}" >/dev/null 2>&1 && also_there "$(dirname "$cached_bin")"; then
    echo "$cached_bin"; return 0
  fi
  return 1
}

# unpacked_install RELEASE PACKAGE [FALLBACK]: FALLBACK, a function, is tried when the download fails.
unpacked_install() {
  if unpacked_find; then return 0; fi
  mkdir -p "$cache"
  "$root/scripts/debian-package.sh" "$1" "$2" "$cache/root" || { [ -n "${3:-}" ] && "$3"; } \
    || { log "no way to get $tool"; exit 1; }
  local bin; bin=$(unpacked_find) || { log "$tool was unpacked but does not run"; exit 1; }
  log "$("$bin" "${version[@]}" 2>&1 | sed -n 1p)"
  echo "$bin"
}
