#!/usr/bin/env bash
# Provides promtool, pinned, and prints the path of the cached binary.
#
#   hack/promtool.sh
#
# promtool checks and unit-tests the platform's PrometheusRule
# (internal/resource/monitoring_promtool_test.go). Prometheus publishes its
# Go module as v0.<3xx>.0 for release v3.x; the binary is built from the Go
# module proxy with `go install` (about 6 minutes cold on 2 cores) and cached
# outside the clone, in
# ${PARSER_OPERATOR_CACHE:-~/.cache/parser-operator}/promtool-<version>; a
# cached binary is used as is, with no network access.
#
# Kept apart from hack/tool.sh for now (another change is under way there):
# promtool has only the module-proxy build, no release download yet.
#
# Environment:
#   PROMTOOL_VERSION=0.316.0   the github.com/prometheus/prometheus module version
set -euo pipefail

CACHE=${PARSER_OPERATOR_CACHE:-$HOME/.cache/parser-operator}
PROMTOOL_VERSION=${PROMTOOL_VERSION:-0.316.0}
out=$CACHE/promtool-$PROMTOOL_VERSION

if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.build-promtool.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "promtool.sh: building promtool v$PROMTOOL_VERSION from the Go module proxy (~6 min cold)" >&2
GOBIN=$tmp CGO_ENABLED=0 go install "github.com/prometheus/prometheus/cmd/promtool@v$PROMTOOL_VERSION" >&2
mv "$tmp/promtool" "$out"
echo "$out"
