#!/usr/bin/env bash
# Installs the Debian packages whose real servers and tools the tests run
# (nginx -t on the generated nginx.conf, redis-server on the cache's and the
# Redis broker's redis.conf, rabbitmq-server on the broker's definitions,
# PostgreSQL 15 behind the shard pods of the simulated cluster; util-linux
# and iproute2 for the simulated cluster's sandboxes and pod route).
# Idempotent and silent when everything is present: it checks first and runs
# `apt-get update` (once) only when something is missing. The tests skip
# without these tools on a developer's machine and fail without them in CI.
#
# Usage: hack/install-test-deps.sh
set -euo pipefail

# One entry per package: "<Debian package> <command it provides>". A command
# already on the machine (from this or another package, e.g. nginx-full)
# counts as present; a command given as a path is looked for there
# (PostgreSQL's binaries are not on PATH).
PACKAGES=(
  "nginx-light nginx"
  "util-linux unshare"
  "iproute2 ip"
  "redis-server redis-server"
  "redis-tools redis-cli"
  "rabbitmq-server rabbitmq-server"
  "postgresql /usr/lib/postgresql/15/bin/initdb"
)

# Commands in sbin are missing from a non-root PATH.
have() {
  case "$1" in /*) [ -x "$1" ]; return ;; esac
  PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1
}

missing=()
for entry in "${PACKAGES[@]}"; do
  read -r pkg cmd <<<"$entry"
  have "$cmd" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  have sudo || { echo "install-test-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

echo "install-test-deps: installing ${missing[*]}" >&2

# The tests start their own servers on their own ports; keep the packages'
# maintainer scripts from starting the system-wide daemons (nginx on :80,
# redis on :6379, rabbitmq on :5672 and epmd on :4369, the postgresql
# cluster 15/main on :5432), unless the machine
# already has a policy.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 0755 "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "install-test-deps: installing ${missing[*]} failed" >&2
  exit 1
fi
rm -f "$log"

for entry in "${PACKAGES[@]}"; do
  read -r pkg cmd <<<"$entry"
  have "$cmd" || { echo "install-test-deps: $pkg installed but $cmd is still missing" >&2; exit 1; }
done
