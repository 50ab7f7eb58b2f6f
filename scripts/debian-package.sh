#!/usr/bin/env bash
# Fetches one Debian package without installing it, and unpacks it into a directory of the project's own.
#
#   scripts/debian-package.sh RELEASE PACKAGE DEST    e.g. bullseye consul .cache/consul/root
#
# apt runs with a private sources list built from this machine's own Debian mirror (no host is written here),
# private package lists and a private archive cache, so nothing of the system's apt state is touched.
set -euo pipefail
release="$1" package="$2" dest="$3"
log() { echo "debian-package.sh: $*" >&2; }

# The first Debian archive URI this machine's apt uses (deb822 or one-line format).
debian_mirror() {
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' /etc/apt/sources.list.d/*.sources || true)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list || true)
  fi
  echo "${uri%/}"
}

mirror=$(debian_mirror)
[ -n "$mirror" ] || { log "no Debian mirror found in the apt sources"; exit 1; }
apt="$(dirname "$dest")/apt-$release"
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/etc/preferences.d" "$apt/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $release main" > "$apt/etc/sources.list"
opts=(-o "Dir::Etc::sourcelist=$apt/etc/sources.list" -o "Dir::Etc::sourceparts=-"
      -o "Dir::Etc::preferencesparts=$apt/etc/preferences.d"
      -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::archives=$apt/archives"
      -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
log "fetching the $release package index"
timeout 300 apt-get "${opts[@]}" -qq update || { log "apt-get update for $release failed"; exit 1; }
rm -f "$apt/debs/${package}"_*.deb
(cd "$apt/debs" && timeout 300 apt-get "${opts[@]}" -qq download "$package") || { log "apt-get download $package failed"; exit 1; }
rm -rf "$dest" && mkdir -p "$dest"
dpkg-deb -x "$(ls "$apt/debs/${package}"_*.deb | head -n 1)" "$dest"
