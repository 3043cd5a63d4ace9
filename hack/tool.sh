#!/usr/bin/env bash
# Builds one pinned tool from the Go module proxy (the only download site this
# project may rely on) and prints the path of the cached binary.
#
#   hack/tool.sh controller-gen | kube-apiserver | etcd | kube-controller-manager
#                | kube-scheduler | kwok | helm | gotestsum | versitygw
#
# Binaries are cached outside the clone, in
# ${PARSER_OPERATOR_CACHE:-~/.cache/parser-operator}/<name>-<version>, so only the
# first build on a machine is slow. Progress goes to stderr, the path to stdout.
set -euo pipefail

CACHE=${PARSER_OPERATOR_CACHE:-$HOME/.cache/parser-operator}
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
CONTROLLER_TOOLS_VERSION=${CONTROLLER_TOOLS_VERSION:-0.23.0}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
HELM_VERSION=${HELM_VERSION:-3.22.0}
GOTESTSUM_VERSION=${GOTESTSUM_VERSION:-1.13.0}
# versitygw (posix backend) is the S3-compatible server the backup tests store
# sets in: it builds in ~3.5 min cold here, faster than rclone.
VERSITYGW_VERSION=${VERSITYGW_VERSION:-1.8.0}

log() { echo "tool.sh: $*" >&2; }

# go_install PKG@VERSION NAME: for tools whose own go.mod builds as is.
go_install() {
  local pkg=$1 out=$2 tmp
  tmp=$(mktemp -d)
  GOBIN=$tmp go install "$pkg" >&2
  mv "$tmp/$(basename "${pkg%@*}")" "$out"
  rm -rf "$tmp"
}

# build_in_module OUT MODULE_REQUIRE PKG [REPLACES...]: for binaries that are not
# meant to be `go install`ed (kubernetes, etcd, kwok), built in a throwaway module.
build_in_module() {
  local out=$1 require=$2 pkg=$3 dir
  dir=$(mktemp -d)
  (
    cd "$dir"
    go mod init example.com/build-tool >/dev/null 2>&1
    printf 'package tools\n\nimport _ "%s"\n' "$pkg" >tools.go
    go mod edit -require="$require"
    shift 3
    for r in "$@"; do go mod edit -replace="$r"; done
    go mod tidy >&2
    CGO_ENABLED=0 go build -o "$out" "$pkg" >&2
  )
  rm -rf "$dir"
}

# The k8s.io staging modules that k8s.io/kubernetes replaces with ./staging/...;
# outside its own repository they must point at the matching v0 release.
kubernetes_replaces() {
  local v0="v0.${KUBERNETES_VERSION#1.}" gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v${KUBERNETES_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" | while read -r m; do
    echo "$m=$m@$v0"
  done
}

build() {
  local name=$1 out=$2
  case "$name" in
    controller-gen)
      go_install "sigs.k8s.io/controller-tools/cmd/controller-gen@v${CONTROLLER_TOOLS_VERSION}" "$out" ;;
    gotestsum)
      go_install "gotest.tools/gotestsum@v${GOTESTSUM_VERSION}" "$out" ;;
    versitygw)
      go_install "github.com/versity/versitygw/cmd/versitygw@v${VERSITYGW_VERSION}" "$out" ;;
    helm)
      go_install "helm.sh/helm/v${HELM_VERSION%%.*}/cmd/helm@v${HELM_VERSION}" "$out" ;;
    etcd)
      build_in_module "$out" "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" go.etcd.io/etcd/server/v3 ;;
    kwok)
      build_in_module "$out" "sigs.k8s.io/kwok@v${KWOK_VERSION}" sigs.k8s.io/kwok/cmd/kwok ;;
    kube-apiserver|kube-controller-manager|kube-scheduler)
      # shellcheck disable=SC2046
      build_in_module "$out" "k8s.io/kubernetes@v${KUBERNETES_VERSION}" "k8s.io/kubernetes/cmd/$name" $(kubernetes_replaces) ;;
    *) log "unknown tool $name"; exit 2 ;;
  esac
}

version_of() {
  case "$1" in
    controller-gen) echo "$CONTROLLER_TOOLS_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    gotestsum) echo "$GOTESTSUM_VERSION" ;;
    versitygw) echo "$VERSITYGW_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    *) echo "$KUBERNETES_VERSION" ;;
  esac
}

main() {
  local name=${1:?usage: hack/tool.sh NAME}
  local out="$CACHE/$name-$(version_of "$name")"
  if [ ! -x "$out" ]; then
    mkdir -p "$CACHE"
    log "building $name $(version_of "$name") from the Go module proxy (cold: minutes; cached in $out)"
    local start=$SECONDS
    # Build to a temporary name so an interrupted build never leaves a broken binary.
    build "$name" "$out.partial"
    mv "$out.partial" "$out"
    log "built $name in $((SECONDS - start))s"
  fi
  echo "$out"
}

main "$@"
