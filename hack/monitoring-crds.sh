#!/usr/bin/env bash
# Prints a directory holding the CRDs of the kinds the operator writes when
# they are installed: the Prometheus Operator's ServiceMonitor, PodMonitor
# and PrometheusRule, and KEDA's ScaledObject and TriggerAuthentication,
# taken from their own Go modules (the files their projects release), so
# envtest validates the operator's objects against the real schemas.
#
#   hack/monitoring-crds.sh
#
# The modules come from the Go module proxy (`go mod download`, outside any
# go.mod: the operator does not import them); the files are cached in
# ${PARSER_OPERATOR_CACHE:-~/.cache/parser-operator}/monitoring-crds-<po>-<keda>.
set -euo pipefail

CACHE=${PARSER_OPERATOR_CACHE:-$HOME/.cache/parser-operator}
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-0.85.0}
KEDA_VERSION=${KEDA_VERSION:-2.21.0}
out=$CACHE/monitoring-crds-$PROMETHEUS_OPERATOR_VERSION-$KEDA_VERSION

if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

# module_dir MODULE@VERSION: where the module proxy's copy was unpacked.
module_dir() {
  (cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "$1") |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

po=$(module_dir "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION")
keda=$(module_dir "github.com/kedacore/keda/v2@v$KEDA_VERSION")
[ -d "$po" ] && [ -d "$keda" ] || { echo "monitoring-crds.sh: could not download the modules" >&2; exit 1; }

mkdir -p "$out"
for kind in servicemonitors podmonitors prometheusrules; do
  cp "$po/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out/"
done
for kind in scaledobjects triggerauthentications; do
  cp "$keda/config/crd/bases/keda.sh_$kind.yaml" "$out/"
done
chmod 0644 "$out"/*.yaml
touch "$out/.complete"
echo "$out"
