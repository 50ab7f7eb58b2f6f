#!/usr/bin/env bash
# The four experiments in full (docs/experiments.md), from a release build: each one's table, CSV, JSON and
# chart under scenarios/experiments/results/NAME/. Needs a Docker engine (Swarm mode on one node); about
# 10 minutes on 2 cores once built. Leaves nothing running (each scenario's teardown removes its stack).
#
#   scripts/experiments.sh [NAME...]      all four, or the ones named (scaling-knee, density, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
export TARSIER_IMAGE_PROFILE=release
token=$(python3 scripts/stack.py token)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(scaling-knee density failover-mttr rolling-update-availability)
status=0
for name in "${names[@]}"; do
  target/release/tarsier scenario run "scenarios/experiments/$name.yaml" --token-file "$token" \
    --out "scenarios/experiments/results/$name" || status=1
done
exit "$status"
