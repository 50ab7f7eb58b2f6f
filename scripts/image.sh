#!/usr/bin/env bash
# The images of the container swarm, on a machine with a Docker engine and no registry (nothing is pulled):
#
#   scripts/image.sh [--release]
#   TARSIER_IMAGE_BINARY=path scripts/image.sh     (the agent image from that debug binary, built beforehand)
#   scripts/image.sh --services                    (every image but the agent's: no tarsier binary needed, so
#                                                   scripts/test.sh makes them while the tests compile)
#
#   tarsier-base:bookworm   made from Debian's own packages (libc6, libgcc-s1, ca-certificates), unpacked into
#                           a directory and imported with `docker import`; a non-root user 10001
#   tarsier:latest          the base + the tarsier binary built on this host (debug unless --release), and the
#                           tools network faults run (sh, sed, nft, tc, ip, iptables-nft) with the libraries
#                           they link, from Debian's packages
#   tarsier-consul:latest   the base + Consul, as scripts/consul.sh fetches it (Debian 11's package)
#   tarsier-prometheus:latest  the base + Prometheus, as scripts/prometheus.sh fetches it (Debian's package)
#   tarsier-nginx:latest    the base + Debian's nginx and the libraries it links: the experiments' load
#                           balancer (deploy/stack.yaml)
#   tarsier-redis:latest    the base + Debian's redis-server and the libraries it links, writing every record
#                           to /data before answering: the database of state-after-failover
#   tarsier-netperf:latest  busybox httpd on 18091 and Debian's iperf3 server on 5201: overlay-overhead's far end
#   tarsier-busybox:latest  the base + Debian's busybox-static serving /srv/www (/, /health) on 8080: a
#                           service that is not tarsier, for the experiments' --param image=...
#   tarsier-registry:latest the base + Debian's docker-registry: provisioning's private registry
#   tarsier-nats:latest     the base + Debian's nats-server (JetStream), as scripts/nats.sh fetches it: where the
#                           agents of deploy/compose.yaml ship their activity logs
#
# Each image is rebuilt only when what it holds changed. Prints nothing on stdout but the image names.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
profile=debug
agent=yes
case "${1:-}" in
  --release) profile=release ;;
  --services) agent=no ;;
  "") ;;
  *) echo "usage: scripts/image.sh [--release | --services]" >&2; exit 2 ;;
esac
base=tarsier-base:bookworm

log() { echo "image.sh: $*" >&2; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 || { log "no Docker engine answers"; exit 1; }
export DOCKER_BUILDKIT=0 # the legacy builder: this engine may have no buildx, and nothing is pulled either way

# Downloads Debian packages with the host's apt (refreshing its lists once if a download fails).
download() {
  local dir=$1; shift
  (cd "$dir" && apt-get download "$@" >/dev/null 2>&1) && return 0
  log "refreshing apt's package lists"
  timeout 300 apt-get update -qq >/dev/null 2>&1 || true
  (cd "$dir" && timeout 300 apt-get download "$@" >/dev/null)
}

# Unpacks Debian packages into the tree $1 (emptied first), with their documentation left out.
unpack() {
  local tree=$1 debs; shift
  debs=$(mktemp -d)
  download "$debs" "$@"
  rm -rf "$tree" && mkdir -p "$tree"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$tree"; done
  rm -rf "$debs" "$tree/usr/share/doc" "$tree/usr/share/man"
}

make_base() {
  if docker image inspect "$base" >/dev/null 2>&1; then return 0; fi
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$work/debs" "$work/rootfs"
  log "making $base from Debian's packages"
  download "$work/debs" libc6 libgcc-s1 ca-certificates
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/rootfs"; done
  local fs="$work/rootfs"
  # What ca-certificates' install script would generate: one bundle of the Mozilla roots it ships.
  mkdir -p "$fs/etc/ssl/certs"
  cat "$fs"/usr/share/ca-certificates/mozilla/*.crt > "$fs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ntarsier:x:10001:10001:tarsier:/nonexistent:/usr/sbin/nologin\n' > "$fs/etc/passwd"
  printf 'root:x:0:\ntarsier:x:10001:\n' > "$fs/etc/group"
  printf 'hosts: files dns\n' > "$fs/etc/nsswitch.conf"
  mkdir -p "$fs/tmp" "$fs/var/lib/tarsier" "$fs/usr/local/bin"
  chmod 1777 "$fs/tmp"
  chown 10001:10001 "$fs/var/lib/tarsier"
  tar -C "$fs" -c . | docker import -m "tarsier base: Debian 12 libc6, libgcc-s1, ca-certificates" - "$base" >/dev/null
}

# Builds image $1 from a context holding the files $3... (copied under their base names), with Dockerfile $2,
# unless an image built from the same files already exists.
build() {
  local name=$1 dockerfile=$2; shift 2
  local digest; digest=$( (sha256sum "$dockerfile"; find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | cut -c1-64) | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "tarsier.inputs"}}' "$name" 2>/dev/null)" = "$digest" ]; then
    echo "$name"; return 0
  fi
  local context; context=$(mktemp -d)
  trap 'rm -rf "$context"' RETURN
  for file in "$@"; do cp -r "$file" "$context/"; done
  log "building $name"
  docker build -q --label "tarsier.inputs=$digest" --build-arg "RUNTIME=$base" -f "$dockerfile" -t "$name" "$context" >/dev/null
  # The image this one replaced, if any, is left untagged: remove it rather than let them pile up.
  docker image prune -f --filter "label=tarsier.inputs" >/dev/null
  echo "$name"
}

make_base
# The network faults' tools (docs/network-faults.md), with every package their programs and iptables'
# extensions link, unpacked into a tree the Dockerfile copies over the base. Alternatives and /bin/sh are
# what the packages' install scripts would have made.
netfault_tree="$root/.cache/netfault-root"
if [ ! -x "$netfault_tree/usr/sbin/nft" ]; then
  log "unpacking the network faults' tools from Debian's packages"
  programs="/bin/dash /bin/sed /usr/sbin/nft /sbin/tc /sbin/ip /usr/sbin/xtables-nft-multi"
  libs=$(ldd $programs /usr/lib/x86_64-linux-gnu/xtables/*.so 2>/dev/null | awk '/=>/ {print $3}' | sort -u)
  packages=$(for f in $programs $libs; do dpkg -S "$f" 2>/dev/null || dpkg -S "$(readlink -f "$f")" 2>/dev/null; done \
    | cut -d: -f1 | sort -u | grep -v -x -e libc6 -e libgcc-s1)
  # shellcheck disable=SC2086
  unpack "$netfault_tree" $packages
  rm -rf "$netfault_tree/usr/share/locale"
  ln -sf dash "$netfault_tree/bin/sh"
  for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-nft-multi "$netfault_tree/usr/sbin/$tool"
  done
fi
# The agent's image: the tarsier binary (stripped) and the network faults' tools over the base. Not a function:
# build's RETURN trap would fire again when a function around it returned.
if [ "$agent" = yes ]; then
  # TARSIER_IMAGE_BINARY: a tarsier binary already built (the Docker tests give the one `cargo test` built, which
  # a `cargo build` here would build again, with other features, and replace under the tests that run it).
  binary="${TARSIER_IMAGE_BINARY:-}"
  if [ -z "$binary" ] || [ "$profile" = release ]; then
    (cd "$root" && cargo build --locked --bin tarsier $([ "$profile" = release ] && echo --release) >&2)
    binary="$root/target/$profile/tarsier"
  fi
  # Without its debug information (190 MB of a debug build): the image needs the code only.
  stripped=$(mktemp -d)
  trap 'rm -rf "$stripped"' EXIT
  strip --strip-debug -o "$stripped/tarsier" "$binary"
  build tarsier:latest "$root/deploy/Dockerfile.prebuilt" "$stripped/tarsier" "$root/scenarios" "$netfault_tree"
fi

consul=$("$root/scripts/consul.sh" install)
build tarsier-consul:latest "$root/deploy/consul/Dockerfile" "$consul"

prometheus=$("$root/scripts/prometheus.sh" install)
build tarsier-prometheus:latest "$root/deploy/prometheus/Dockerfile" "$prometheus"

# nginx from Debian's packages, unpacked into a tree the Dockerfile copies over the base.
nginx_tree="$root/.cache/nginx-root"
if [ ! -x "$nginx_tree/usr/sbin/nginx" ]; then
  log "unpacking Debian's nginx"
  unpack "$nginx_tree" nginx libcrypt1 libpcre2-8-0 libssl3 zlib1g
  rm -rf "$nginx_tree/etc/nginx/sites-enabled"
fi
build tarsier-nginx:latest "$root/deploy/nginx/Dockerfile" "$nginx_tree"

# busybox-static from Debian: one static binary, its applets as links (sh, wget for a health check), and the
# two pages it serves.
busybox_tree="$root/.cache/busybox-root"
if [ ! -x "$busybox_tree/bin/busybox" ]; then
  log "unpacking Debian's busybox-static"
  unpack "$busybox_tree" busybox-static
  rm -rf "$busybox_tree/usr/share"
  for applet in sh wget; do ln -sf busybox "$busybox_tree/bin/$applet"; done
  mkdir -p "$busybox_tree/srv/www"
  printf 'ok\n' > "$busybox_tree/srv/www/health"
  printf '<!doctype html><title>busybox</title><p>a service that is not tarsier\n' > "$busybox_tree/srv/www/index.html"
fi
build tarsier-busybox:latest "$root/deploy/busybox/Dockerfile" "$busybox_tree"

# redis-server from Debian with the libraries it links (libsystemd0's own included), for state-after-failover.
redis_tree="$root/.cache/redis-root"
if [ ! -x "$redis_tree/usr/bin/redis-check-rdb" ]; then
  log "unpacking Debian's redis-server"
  unpack "$redis_tree" redis-server redis-tools libatomic1 libjemalloc2 liblzf1 libssl3 libsystemd0 libcap2 \
    libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1 libstdc++6
  rm -rf "$redis_tree/etc/init.d"
fi
# Its data directory, owned by the database's user in the image (a directory of one placeholder).
mkdir -p "$root/.cache/redis-data" && touch "$root/.cache/redis-data/.keep"
build tarsier-redis:latest "$root/deploy/redis/Dockerfile" "$redis_tree" "$root/.cache/redis-data"

# The network paths' far end: busybox (httpd, sh) and Debian's iperf3 with the libraries it links.
netperf_tree="$root/.cache/netperf-root"
if [ ! -x "$netperf_tree/usr/bin/iperf3" ]; then
  log "unpacking Debian's iperf3 and busybox-static"
  unpack "$netperf_tree" iperf3 libiperf0 libsctp1 libssl3 busybox-static
  rm -rf "$netperf_tree/usr/share"
  ln -sf busybox "$netperf_tree/bin/sh"
  mkdir -p "$netperf_tree/srv/www" && printf 'ok\n' > "$netperf_tree/srv/www/health"
fi
build tarsier-netperf:latest "$root/deploy/netperf/Dockerfile" "$netperf_tree"

# Debian's docker-registry (one binary linking only libc): the private registry images are pulled from in
# provisioning. Its storage directory (a directory of one placeholder), owned by the registry's user in the image.
registry_tree="$root/.cache/registry-root"
if [ ! -x "$registry_tree/usr/bin/docker-registry" ]; then
  log "unpacking Debian's docker-registry"
  unpack "$registry_tree" docker-registry
  rm -rf "$registry_tree/usr/share" "$registry_tree/etc/init.d" "$registry_tree/lib/systemd"
fi
mkdir -p "$root/.cache/registry-data" && touch "$root/.cache/registry-data/.keep"
build tarsier-registry:latest "$root/deploy/registry/Dockerfile" "$registry_tree" "$root/deploy/registry/config.yml" \
  "$root/.cache/registry-data"

# Debian's nats-server (a static binary), as scripts/nats.sh fetches it, with an empty store its user owns.
nats_bin=$("$root/scripts/nats.sh" install)
mkdir -p "$root/.cache/nats-image" "$root/.cache/nats-data" && touch "$root/.cache/nats-data/.keep"
cp "$nats_bin" "$root/.cache/nats-image/nats-server"
build tarsier-nats:latest "$root/deploy/nats/Dockerfile" "$root/.cache/nats-image/nats-server" "$root/.cache/nats-data"
