#!/usr/bin/env bash
# Provides one pinned tool binary and prints the path of the cached binary.
#
#   hack/tool.sh controller-gen | kube-apiserver | etcd | kube-controller-manager
#                | kube-scheduler | kwok | helm | gotestsum | versitygw | golangci-lint
#
# Download first, build as the fallback: the upstream release artifact for
# the pinned version and this OS/arch is downloaded and checked against the
# SHA-256 its project publishes; any failure (no network, a checksum
# mismatch, no artifact for this platform, no published checksum) builds the
# tool from the Go module proxy instead (cold: minutes; kube-apiserver ~9 min
# on 2 cores). Which path it took goes to stderr, the path to stdout.
#
# Binaries are cached outside the clone, in
# ${PARSER_OPERATOR_CACHE:-~/.cache/parser-operator}/<name>-<version>; a cached
# binary is used as is, with no network access.
#
# Environment:
#   PARSER_OPERATOR_OFFLINE=1          no download attempt: build from source
#   PARSER_OPERATOR_RELEASE_MIRROR=URL fetch https://HOST/PATH from URL/HOST/PATH
#                                      instead (a mirror of the release sites;
#                                      the tests point it at a local server)
#   PARSER_OPERATOR_CONNECT_TIMEOUT=5  seconds to wait for a connection
#   PARSER_OPERATOR_PLATFORM=OS/ARCH   the platform whose artifact is fetched
#                                      (default: this machine's; for tests)
#   KUBERNETES_VERSION, ETCD_VERSION, ... below: the pinned versions
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
# golangci-lint v2: `make lint` (.golangci.yml).
GOLANGCI_LINT_VERSION=${GOLANGCI_LINT_VERSION:-2.15.0}
CONNECT_TIMEOUT=${PARSER_OPERATOR_CONNECT_TIMEOUT:-5}

log() { echo "tool.sh: $*" >&2; }

version_of() {
  case "$1" in
    controller-gen) echo "$CONTROLLER_TOOLS_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    gotestsum) echo "$GOTESTSUM_VERSION" ;;
    versitygw) echo "$VERSITYGW_VERSION" ;;
    golangci-lint) echo "$GOLANGCI_LINT_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler) echo "$KUBERNETES_VERSION" ;;
    *) return 1 ;;
  esac
}

## The download path.

# platform: OS and ARCH in Go's spelling, or failure for a platform no
# upstream here publishes binaries for.
platform() {
  local p=${PARSER_OPERATOR_PLATFORM:-}
  if [ -z "$p" ]; then
    case "$(uname -s)" in Linux) p=linux ;; Darwin) p=darwin ;; *) p=unknown ;; esac
    case "$(uname -m)" in x86_64 | amd64) p=$p/amd64 ;; aarch64 | arm64) p=$p/arm64 ;; *) p=$p/unknown ;; esac
  fi
  OS=${p%/*} ARCH=${p#*/}
  case "$OS/$ARCH" in linux/amd64 | linux/arm64 | darwin/amd64 | darwin/arm64) ;; *) return 1 ;; esac
}

# artifact NAME: where upstream publishes NAME's release binary for OS/ARCH
# and its SHA-256. Sets ART_URL (the artifact), ART_FORMAT (bin, tar.gz or
# zip), ART_BINARY (the binary's file name inside an archive), SUM_URL and
# SUM_KIND: "list" for a file of "<sha256>  <file>" lines or a lone hash,
# "github" for the digest GitHub computes for every release asset (the
# release API's assets[].digest, "sha256:<hex>"), for projects that publish no
# checksum file. Fails when upstream publishes nothing for OS/ARCH.
artifact() {
  local name=$1 v gh
  v=$(version_of "$name")
  ART_FORMAT=bin ART_BINARY=$name SUM_KIND=list
  case "$name" in
    kube-apiserver | kube-controller-manager | kube-scheduler)
      # The Kubernetes release puts every binary on dl.k8s.io with a .sha256
      # file beside it; the server binaries are built for Linux only.
      [ "$OS" = linux ] || return 1
      ART_URL=https://dl.k8s.io/v$v/bin/$OS/$ARCH/$name
      SUM_URL=$ART_URL.sha256 ;;
    etcd)
      # etcd's GitHub release: etcd-vX-linux-ARCH.tar.gz (zip on macOS), holding
      # etcd-vX-OS-ARCH/etcd, and SHA256SUMS for every asset.
      gh=https://github.com/etcd-io/etcd/releases/download/v$v
      ART_FORMAT=tar.gz
      [ "$OS" = darwin ] && ART_FORMAT=zip
      ART_URL=$gh/etcd-v$v-$OS-$ARCH.$ART_FORMAT
      SUM_URL=$gh/SHA256SUMS ;;
    helm)
      # get.helm.sh: helm-vX-OS-ARCH.tar.gz (OS-ARCH/helm inside) and a
      # .sha256sum file beside it.
      ART_URL=https://get.helm.sh/helm-v$v-$OS-$ARCH.tar.gz ART_FORMAT=tar.gz
      SUM_URL=$ART_URL.sha256sum ;;
    gotestsum)
      # goreleaser: gotestsum_X_OS_ARCH.tar.gz and gotestsum-X-checksums.txt.
      gh=https://github.com/gotestyourself/gotestsum/releases/download/v$v
      ART_URL=${gh}/gotestsum_${v}_${OS}_${ARCH}.tar.gz ART_FORMAT=tar.gz
      SUM_URL=$gh/gotestsum-$v-checksums.txt ;;
    versitygw)
      # goreleaser with uname-style names: versitygw_vX_Linux_x86_64.tar.gz,
      # wrapped in a directory of that name, and checksums.txt.
      local os=Linux arch=x86_64
      [ "$OS" = darwin ] && os=Darwin
      [ "$ARCH" = arm64 ] && arch=arm64
      gh=https://github.com/versity/versitygw/releases/download/v$v
      ART_URL=${gh}/versitygw_v${v}_${os}_${arch}.tar.gz ART_FORMAT=tar.gz
      SUM_URL=$gh/checksums.txt ;;
    golangci-lint)
      # goreleaser: golangci-lint-X-OS-ARCH.tar.gz, wrapped in a directory of
      # that name, and golangci-lint-X-checksums.txt.
      gh=https://github.com/golangci/golangci-lint/releases/download/v$v
      ART_URL=$gh/golangci-lint-$v-$OS-$ARCH.tar.gz ART_FORMAT=tar.gz
      SUM_URL=$gh/golangci-lint-$v-checksums.txt ;;
    kwok)
      # kwok's release uploads bare binaries (kwok-OS-ARCH) and no checksum
      # file: GitHub's own digest of the asset is the published SHA-256.
      ART_URL=https://github.com/kubernetes-sigs/kwok/releases/download/v$v/kwok-$OS-$ARCH
      SUM_URL=https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v$v SUM_KIND=github ;;
    controller-gen)
      # controller-tools uploads controller-gen-OS-ARCH binaries (since v0.15)
      # and no checksum file: GitHub's digest again.
      ART_URL=https://github.com/kubernetes-sigs/controller-tools/releases/download/v$v/controller-gen-$OS-$ARCH
      SUM_URL=https://api.github.com/repos/kubernetes-sigs/controller-tools/releases/tags/v$v SUM_KIND=github ;;
    *) return 1 ;;
  esac
}

# url URL: URL itself, or its place on PARSER_OPERATOR_RELEASE_MIRROR.
url() {
  if [ -n "${PARSER_OPERATOR_RELEASE_MIRROR:-}" ]; then
    echo "${PARSER_OPERATOR_RELEASE_MIRROR%/}/${1#https://}"
  else
    echo "$1"
  fi
}

# fetch URL OUT: a short connect timeout so that no network costs seconds,
# not minutes; a stalled transfer (under 10 kB/s for 30 s) is abandoned.
fetch() {
  curl -fsSL --connect-timeout "$CONNECT_TIMEOUT" --speed-limit 10240 --speed-time 30 \
    -o "$2" "$(url "$1")"
}

# published_sha256 SUMS ASSET KIND: the hash SUMS gives for ASSET, or nothing.
published_sha256() {
  case "$3" in
    list)
      awk -v asset="$2" '
        NF == 1 && NR == 1 { print $1; exit }
        NF >= 2 { f = $2; sub(/^\*/, "", f); sub(/^\.\//, "", f); if (f == asset) { print $1; exit } }' "$1" ;;
    github)
      # Each asset object holds "digest" before "browser_download_url".
      tr ',{}' '\n\n\n' <"$1" | awk -v asset="/$2" '
        /"digest":/ { d = $0; sub(/.*"digest": *"?(sha256:)?/, "", d); sub(/".*/, "", d); if (d == "null") d = "" }
        /"browser_download_url":/ {
          u = $0; sub(/.*"browser_download_url": *"/, "", u); sub(/".*/, "", u)
          if (d != "" && substr(u, length(u) - length(asset) + 1) == asset) { print d; exit }
          d = ""
        }' ;;
  esac | tr 'A-F' 'a-f'
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | awk '{print $1}'
}

# download NAME OUT: the verified release binary at OUT, or failure with the
# reason on stderr. A subshell, so its temporary directory always goes. It
# runs as an `if` condition, where errexit does not apply: every step that
# can fail says so.
download() (
  local name=$1 out=$2 v asset want got bin dir
  v=$(version_of "$name")
  if [ "${PARSER_OPERATOR_OFFLINE:-}" = 1 ]; then
    log "PARSER_OPERATOR_OFFLINE=1: not downloading $name"; return 1
  fi
  command -v curl >/dev/null || { log "no curl: not downloading $name"; return 1; }
  platform || { log "no $name release binary for $OS/$ARCH"; return 1; }
  artifact "$name" || { log "no $name $v release binary for $OS/$ARCH"; return 1; }
  asset=${ART_URL##*/}
  dir=$(mktemp -d "$CACHE/.download-$name.XXXXXX") || return 1
  trap 'rm -rf "$dir"' EXIT
  log "downloading $name $v: $(url "$ART_URL")"
  fetch "$SUM_URL" "$dir/sums" || { log "could not fetch its checksum from $(url "$SUM_URL")"; return 1; }
  want=$(published_sha256 "$dir/sums" "$asset" "$SUM_KIND")
  [[ $want =~ ^[0-9a-f]{64}$ ]] || { log "no SHA-256 for $asset in $(url "$SUM_URL")"; return 1; }
  fetch "$ART_URL" "$dir/$asset" || { log "could not download $(url "$ART_URL")"; return 1; }
  got=$(sha256_of "$dir/$asset")
  if [ "$got" != "$want" ]; then
    log "checksum mismatch: $asset has SHA-256 $got, $(url "$SUM_URL") says $want; refusing it"
    return 1
  fi
  mkdir "$dir/x"
  case "$ART_FORMAT" in
    bin) mv "$dir/$asset" "$dir/x/$ART_BINARY" ;;
    tar.gz) tar -xzf "$dir/$asset" -C "$dir/x" || { log "could not unpack $asset"; return 1; } ;;
    zip) unzip -q "$dir/$asset" -d "$dir/x" || { log "could not unpack $asset"; return 1; } ;;
  esac
  bin=$(find "$dir/x" -type f -name "$ART_BINARY" -print -quit)
  [ -n "$bin" ] || { log "no $ART_BINARY in $asset"; return 1; }
  chmod 0755 "$bin"
  mv "$bin" "$out"
)

## The source build, from the Go module proxy.

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
    golangci-lint)
      go_install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v${GOLANGCI_LINT_VERSION}" "$out" ;;
    helm)
      go_install "helm.sh/helm/v${HELM_VERSION%%.*}/cmd/helm@v${HELM_VERSION}" "$out" ;;
    etcd)
      build_in_module "$out" "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" go.etcd.io/etcd/server/v3 ;;
    kwok)
      build_in_module "$out" "sigs.k8s.io/kwok@v${KWOK_VERSION}" sigs.k8s.io/kwok/cmd/kwok ;;
    kube-apiserver | kube-controller-manager | kube-scheduler)
      # shellcheck disable=SC2046
      build_in_module "$out" "k8s.io/kubernetes@v${KUBERNETES_VERSION}" "k8s.io/kubernetes/cmd/$name" $(kubernetes_replaces) ;;
  esac
}

main() {
  local name=${1:?usage: hack/tool.sh NAME}
  local v out start
  v=$(version_of "$name") || { log "unknown tool $name"; exit 2; }
  out="$CACHE/$name-$v"
  if [ ! -x "$out" ]; then
    mkdir -p "$CACHE"
    # A temporary name of this process's own: an interrupted run never leaves
    # a broken binary, and two runs at once do not write one file.
    partial="$out.partial.$$"
    trap 'rm -f "$partial"' EXIT
    start=$SECONDS
    if download "$name" "$partial"; then
      log "downloaded $name $v (SHA-256 verified) in $((SECONDS - start))s; cached in $out"
    else
      log "building $name $v from the Go module proxy instead (cold: minutes; cached in $out)"
      start=$SECONDS
      build "$name" "$partial"
      log "built $name $v from source in $((SECONDS - start))s"
    fi
    mv "$partial" "$out"
  fi
  echo "$out"
}

main "$@"
