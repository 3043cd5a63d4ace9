#!/usr/bin/env bash
# The project's test command (`make test`, and .ci/run through it): installs
# what the tests need, provides the envtest binaries, runs every Go test
# (unit, golden, nginx -t, Pod Security, envtest suites) and ends with
# gotestsum's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-test-deps.sh
KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
export KUBEBUILDER_ASSETS
GOTESTSUM=$(hack/tool.sh gotestsum)
# The backup tests' S3 server, built here (minutes, once) rather than inside a
# package's test timeout.
VERSITYGW=$(hack/tool.sh versitygw)
export VERSITYGW
# promtool checks and unit-tests the platforms' alerts (~6 min cold, once).
PROMTOOL=$(hack/promtool.sh)
export PROMTOOL

# pkgname format: one line a package, failures in full (Ginkgo suites report
# their specs in the failure output), then "DONE N tests ... in Xs".
# -p 1: packages one at a time. Several start real servers (redis-server
# clusters, RabbitMQ, API servers) whose timing-sensitive checks (a Redis
# Cluster migration under writes) flake when they share 2 cores.
if [ "$#" -gt 0 ]; then
  exec "$GOTESTSUM" --format pkgname --format-hide-empty-pkg -- -count=1 -p 1 "$@"
fi
# The controllers' envtest suites (RACE_PKGS: internal/controller, ~4 min
# here) run with the race detector (-race); the other packages without it,
# as their real servers' timing checks are tuned for the plain binary. One
# gotestsum run reads both `go test -json` streams, so the last line is one
# summary of all of them.
RACE_PKGS=${RACE_PKGS:-./internal/controller/}
export RACE_PKGS
exec "$GOTESTSUM" --format pkgname --format-hide-empty-pkg --raw-command -- bash -c '
  race=$(go list $RACE_PKGS)
  rc=0
  go test -json -count=1 -p 1 $(go list ./... | grep -vxF "$race") || rc=$?
  go test -json -race -count=1 -p 1 $RACE_PKGS || rc=$?
  exit $rc'
