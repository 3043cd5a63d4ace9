#!/usr/bin/env bash
# kube-api-linter (sigs.k8s.io/kube-api-linter, "KAL") on the CRD types:
# `make lint` runs it after golangci-lint.
#
#   hack/kube-api-lint.sh [PACKAGES...]  lint PACKAGES (default ./api/...) with
#                                        .golangci-kal.yml; fails on any finding
#   hack/kube-api-lint.sh --path         build if needed, print the binary's path
#
# KAL is a golangci-lint module plugin. `golangci-lint custom` would build it
# by cloning golangci-lint with git, which needs the network; the KAL module
# also ships the result as a command of its own,
# cmd/golangci-lint-kube-api-linter (golangci-lint's main with KAL imported as
# a module plugin). That command is built here from the Go module proxy, the
# way hack/tool.sh builds its tools: in a throwaway module that requires KAL
# at the pinned pseudo-version (KAL has no releases) and golangci-lint at the
# version hack/tool.sh pins for `make lint`, so both runs are the same
# golangci-lint. The binary is cached outside the clone, in
# ${PARSER_OPERATOR_CACHE:-~/.cache/parser-operator}/kube-api-linter-<KAL version>-golangci-lint-<version>;
# a cached binary is used as is, with no network access. Cold build: about a
# minute on 2 cores.
#
# Environment:
#   KUBE_API_LINTER_VERSION  the KAL pseudo-version (below)
#   GOLANGCI_LINT_VERSION    default: hack/tool.sh's
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

CACHE=${PARSER_OPERATOR_CACHE:-$HOME/.cache/parser-operator}
KUBE_API_LINTER_VERSION=${KUBE_API_LINTER_VERSION:-v0.0.0-20260716143926-092fe0c72997}
if [ -z "${GOLANGCI_LINT_VERSION:-}" ]; then
  GOLANGCI_LINT_VERSION=$(sed -n 's/^GOLANGCI_LINT_VERSION=\${GOLANGCI_LINT_VERSION:-\([^}]*\)}$/\1/p' hack/tool.sh)
fi
[ -n "$GOLANGCI_LINT_VERSION" ] || { echo "kube-api-lint.sh: no GOLANGCI_LINT_VERSION in hack/tool.sh" >&2; exit 2; }
CONFIG=.golangci-kal.yml

log() { echo "kube-api-lint.sh: $*" >&2; }

# build OUT: the KAL command, built in a throwaway module. A subshell, so its
# temporary directory always goes.
build() (
  local out=$1 dir got
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  cd "$dir"
  go mod init example.com/build-kube-api-linter >/dev/null 2>&1
  # The import only makes `go mod tidy` record the requirements the command
  # needs; the package is built by path below, never imported.
  printf 'package tools\n\nimport _ "sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter"\n' >tools.go
  go mod edit \
    -require="sigs.k8s.io/kube-api-linter@${KUBE_API_LINTER_VERSION}" \
    -require="github.com/golangci/golangci-lint/v2@v${GOLANGCI_LINT_VERSION}"
  go mod tidy >&2
  # tidy keeps the pins unless another module needs a newer golangci-lint:
  # fail then, rather than run one other than hack/tool.sh's.
  got=$(go list -m -f '{{.Version}}' github.com/golangci/golangci-lint/v2)
  if [ "$got" != "v${GOLANGCI_LINT_VERSION}" ]; then
    log "KAL ${KUBE_API_LINTER_VERSION} needs golangci-lint $got, not v${GOLANGCI_LINT_VERSION}"
    exit 1
  fi
  CGO_ENABLED=0 go build -o "$out" sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter >&2
)

binary() {
  local out start partial
  out="$CACHE/kube-api-linter-${KUBE_API_LINTER_VERSION}-golangci-lint-${GOLANGCI_LINT_VERSION}"
  if [ ! -x "$out" ]; then
    mkdir -p "$CACHE"
    # A temporary name of this process's own: an interrupted build never
    # leaves a broken binary, and two builds at once do not write one file.
    partial="$out.partial.$$"
    trap 'rm -f "'"$partial"'"' EXIT
    start=$SECONDS
    log "building kube-api-linter ${KUBE_API_LINTER_VERSION} (golangci-lint v${GOLANGCI_LINT_VERSION}) from the Go module proxy; cached in $out"
    build "$partial"
    mv "$partial" "$out"
    log "built in $((SECONDS - start))s"
  fi
  echo "$out"
}

if [ "${1:-}" = --path ]; then
  binary
  exit 0
fi
[ $# -gt 0 ] || set -- ./api/...
bin=$(binary)
"$bin" run --config "$CONFIG" "$@"
