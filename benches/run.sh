#!/usr/bin/env bash
# Regenerates docs/performance.md's table: every figure next to its baseline from the same run.
#   benches/run.sh            (all sections; rate_matrix alone takes about 15 minutes on 2 cores, 20 with BENCH_ROUNDS=5)
#   benches/run.sh wave       (one section: proxy, ramp, rate_matrix, control, file_log, logship, control_hog, parse, handler, wave, fidelity, http_load, rate, signing)
#   benches/run.sh netfault   (the network faults' fidelity, as root, in network namespaces it makes: writes docs/network-faults.md's table)
# Installs wrk, stress-ng, h2load, socat, haproxy and rsyslog from Debian if missing, nginx as the tests do
# (scripts/nginx.sh), and oha from crates.io. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
if [ "${1:-}" = netfault ]; then
  need iperf3 iperf3
  need ping iputils-ping
  for tool in nft:nftables tc:iproute2 iptables-restore:iptables; do need "${tool%%:*}" "${tool#*:}"; done
  cargo build --release --quiet --bin tarsier
  shift
  TARSIER_BIN="$PWD/target/release/tarsier" exec python3 benches/netfault.py "$@"
fi
need wrk wrk
need stress-ng stress-ng
# nginx: the tests' own (scripts/nginx.sh: Debian's package unpacked into .cache), not a package installed, which
# would also start a system nginx on port 80.
TARSIER_NGINX_BIN=$(scripts/nginx.sh install | tail -n 1)
export TARSIER_NGINX_BIN
need h2load nghttp2-client
need socat socat
need haproxy haproxy
need rsyslogd rsyslog
# oha is not in Debian: built once from crates.io into .cache (a few minutes), pinned for comparable runs; only
# the http_load and rate sections use it.
oha=.cache/oha/bin/oha
if [ $# -eq 0 ] || [[ " $* " == *" http_load "* ]] || [[ " $* " == *" rate "* ]] || [[ " $* " == *" rate_matrix "* ]]; then
  [ -x "$oha" ] || cargo install --quiet --locked --root .cache/oha oha --version 1.16.0
fi
bare=$(cargo bench --bench bare_axum --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bare_axum" and m.get("executable"):
        print(m["executable"])')
# What is measured is what `cargo build --release` makes, copied aside: every `cargo bench` (the baseline
# above, the criterion sections) builds the package's binary too, in the bench profile and over
# target/release/tarsier, with other symbol names than a release build (link/hot-symbols.txt would not match).
cargo build --release --quiet --bin tarsier
mkdir -p target/bench-bin
cp target/release/tarsier target/bench-bin/tarsier
export TARSIER_BIN="$PWD/target/bench-bin/tarsier" BARE_AXUM_BIN="$bare" OHA_BIN="$PWD/$oha"
exec python3 benches/run.py "$@"
