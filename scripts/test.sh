#!/usr/bin/env bash
# The one test command: formatting, lints, then every test of the workspace.
# CI (.ci/run) calls exactly this; so does a developer on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== consul (the swarm tests run a real Consul dev agent; each test starts its own)"
TARSIER_CONSUL_BIN="$(scripts/consul.sh install)"
export TARSIER_CONSUL_BIN
"$TARSIER_CONSUL_BIN" version | sed -n 1p

echo "== prometheus (the scenario tests run a real Prometheus)"
TARSIER_PROMETHEUS_BIN="$(scripts/prometheus.sh install)"
export TARSIER_PROMETHEUS_BIN
"$TARSIER_PROMETHEUS_BIN" --version 2>&1 | sed -n 1p

echo "== xmllint (a test validates the JUnit XML against tests/junit.xsd)"
TARSIER_XMLLINT_BIN="$(scripts/xmllint.sh install)"
export TARSIER_XMLLINT_BIN

echo "== nginx (the fault proxy tests put proxies in front of a real nginx)"
TARSIER_NGINX_BIN="$(scripts/nginx.sh install)"
export TARSIER_NGINX_BIN
"$TARSIER_NGINX_BIN" -v 2>&1

echo "== nats-server (the log-shipping tests publish to a real JetStream)"
TARSIER_NATS_BIN="$(scripts/nats.sh install)"
export TARSIER_NATS_BIN
"$TARSIER_NATS_BIN" --version

echo "== nft, tc, ip, iptables (the network fault tests make network namespaces: root only, skipped elsewhere)"
if [ "$(id -u)" = 0 ]; then
  for need in nft:nftables tc:iproute2 iptables-restore:iptables; do
    command -v "${need%%:*}" >/dev/null 2>&1 && continue
    (apt-get install -y -qq "${need#*:}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need#*:}"; }) >/dev/null
  done
  nft --version
fi

echo "== python3 venv (a test drives the fault proxy with Toxiproxy's own Python client, from PyPI)"
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq python3-venv >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }) >/dev/null
fi
python3 --version

echo "== chromium (the console and HTML report tests look at the pages in a real browser)"
if TARSIER_CHROMIUM_BIN="$(scripts/chromium.sh install)"; then
  export TARSIER_CHROMIUM_BIN
  "$TARSIER_CHROMIUM_BIN" --version 2>/dev/null | sed -n 1p
else
  echo "no chromium: the browser tests will print 'skipped: ...'"
fi

images_log=$(mktemp)
trap 'rm -f "$images_log"' EXIT
images=""
if docker info >/dev/null 2>&1; then
  echo "== docker: the container tests build their images with scripts/image.sh (no registry needed)"
  # Every image but the agent's needs no tarsier binary: made while the tests compile (mostly downloads and
  # docker import, little CPU), so the Docker tests start with them (74 s on a fresh engine).
  scripts/image.sh --services >/dev/null 2>"$images_log" &
  images=$!
else
  echo "== docker: no engine answers; the tests in tests/docker/ will print 'skipped: no Docker engine'"
fi
# CI builds in a clean clone, where incremental state is written and never read again.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
docker_log=$(mktemp)
trap 'rm -f "$log" "$docker_log" "$docker_log.rc" "$images_log"' EXIT
# Every test binary runs even when one fails, and the closing count is always printed.
status=0
cargo test --workspace --locked --no-run || status=1
cargo test --locked --test docker --no-run || status=1
# The Docker tests run scripts/image.sh themselves: it finds these made and builds the agent's. Never two at once.
if [ -n "$images" ] && ! wait "$images"; then
  echo "scripts/image.sh --services failed (the Docker tests will try again):"
  cat "$images_log"
fi
# The Docker tests (tests/docker, `test = false` in Cargo.toml so a bare `cargo test` leaves them out) spend
# most of their time waiting on engines: health checks, restarts, failure detection, faults held for seconds.
# They run beside the rest instead of after it; their output follows the others'.
( cargo test --locked --test docker --no-fail-fast >"$docker_log" 2>&1; echo $? >"$docker_log.rc" ) &
docker_tests=$!
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=1
wait "$docker_tests" || true
echo "== the Docker tests (run beside the others)"
tee -a "$log" <"$docker_log"
[ "$(cat "$docker_log.rc" 2>/dev/null)" = 0 ] || status=1
echo "== scenario smoke (the CI scenario, against a local swarm)"
target/debug/tarsier scenario run scenarios/smoke.yaml --junit target/junit-smoke.xml | tee -a "$log" | tail -n 20 || status=1
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
