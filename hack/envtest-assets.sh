#!/usr/bin/env bash
# Prints a directory holding kube-apiserver, etcd and kubectl for envtest
# (the value for KUBEBUILDER_ASSETS).
#
# First try: setup-envtest's usual download, with a short timeout, for users
# with internet. Otherwise: kube-apiserver and etcd from hack/tool.sh (their
# release downloads, else builds from the Go module proxy), cached in
# ~/.cache/parser-operator and reused. PARSER_OPERATOR_OFFLINE=1 skips
# setup-envtest too.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${PARSER_OPERATOR_CACHE:-$HOME/.cache/parser-operator}
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.37.2}
SETUP_ENVTEST_TIMEOUT=${SETUP_ENVTEST_TIMEOUT:-20}
log() { echo "envtest-assets: $*" >&2; }

has_assets() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ] && [ -x "$1/kubectl" ]; }

# try_setup_envtest: the download path. Quiet failure: no network is normal here.
try_setup_envtest() {
  [ "${SKIP_SETUP_ENVTEST:-}" = 1 ] || [ "${PARSER_OPERATOR_OFFLINE:-}" = 1 ] && return 1
  local dir
  dir=$(timeout "$SETUP_ENVTEST_TIMEOUT" go run sigs.k8s.io/controller-runtime/tools/setup-envtest@v0.25.1 \
    use "${KUBERNETES_VERSION%.*}.x" --bin-dir "$CACHE/setup-envtest" -p path 2>/dev/null) || return 1
  has_assets "$dir" || return 1
  echo "$dir"
}

build_from_source() {
  local dir="$CACHE/envtest-$KUBERNETES_VERSION"
  if ! has_assets "$dir"; then
    mkdir -p "$dir"
    ln -sf "$("$HERE/tool.sh" kube-apiserver)" "$dir/kube-apiserver"
    ln -sf "$("$HERE/tool.sh" etcd)" "$dir/etcd"
    local kubectl
    kubectl=$(command -v kubectl) || { log "kubectl not found on PATH"; exit 1; }
    ln -sf "$kubectl" "$dir/kubectl"
  fi
  echo "$dir"
}

main() {
  local cached="$CACHE/envtest-$KUBERNETES_VERSION"
  if has_assets "$cached"; then echo "$cached"; return; fi
  if dir=$(try_setup_envtest); then echo "$dir"; return; fi
  log "setup-envtest could not download (no internet?); using hack/tool.sh"
  build_from_source
}

main "$@"
