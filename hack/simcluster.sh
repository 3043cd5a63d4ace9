#!/usr/bin/env bash
# The simulated cluster of the e2e suite, for `make demo` and for poking
# around: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kwok with 3 fake Nodes (pods Running and Ready on loopback IPs 127.N.x.y,
# PVCs bound by the default StorageClass kwok-volume), and real servers
# behind pods: a redis-server behind every pod whose container runs
# redis-server, PostgreSQL 15 behind postgres containers, RabbitMQ behind
# rabbitmq containers (test/e2e/README.md); while it runs, connections to a
# pod IP come from that IP, as in a pod (a local route for the pod range,
# `ip route replace local 127.N.0.0/16 dev lo table local`, removed at
# stop; a killed cluster may leave it, harmless). The binaries come
# from hack/tool.sh and are cached: the first use on a machine downloads
# them (seconds) or, offline, builds them from the Go module proxy (~15 min on
# 2 cores); later starts take seconds.
#
#   hack/simcluster.sh start [flags]  start in the background, wait until it
#                                     works, print the exports to use it
#   hack/simcluster.sh env            print those exports again:
#                                     eval "$(hack/simcluster.sh env)"
#   hack/simcluster.sh stop           stop everything it started, remove its
#                                     directory (SIMCLUSTER_KEEP=1 keeps it)
#   hack/simcluster.sh status         running or not
#   hack/simcluster.sh kubeconfig-for NAMESPACE SERVICEACCOUNT [FILE]
#                                     write a kubeconfig that acts as that
#                                     ServiceAccount (a 24h token), print FILE
#   hack/simcluster.sh run [flags]    in the foreground until Ctrl-C
#   hack/simcluster.sh tools          only build (or find) the binaries
#
# The directory of the background cluster is $SIMCLUSTER_DIR (default
# ${TMPDIR:-/tmp}/parser-operator-simcluster): kubeconfig, logs/ (one file per
# component and per server), etcd data. Flags (see `run -h`): --nodes N,
# --pod-cidr CIDR, --no-redis, --no-postgres, --no-rabbitmq,
# --postgres-bin-dir DIR, --redis-announce-ip.
#
# Nothing outlives it: `stop` (or Ctrl-C in `run`) stops each component; if
# the cluster process itself is killed, the kernel kills its children
# (Pdeathsig), and `stop` also kills whatever is left in its session.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SIMCLUSTER_DIR:-${TMPDIR:-/tmp}/parser-operator-simcluster}
case "$DIR" in /*) ;; *) DIR=$PWD/$DIR ;; esac
# The cluster finds hack/tool.sh from the clone it runs in.
cd "$ROOT"
START_TIMEOUT=${SIMCLUSTER_START_TIMEOUT:-120}
TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { echo "simcluster.sh: $*" >&2; }

tools() {
  local t
  for t in "${TOOLS[@]}"; do
    [ -x "$("$ROOT/hack/tool.sh" "$t")" ] || { log "no $t"; exit 1; }
  done
}

# build_cli OUT: the cluster command, built with the module's own toolchain.
build_cli() {
  (cd "$ROOT" && go build -o "$1" ./test/e2e/cmd/simcluster)
}

# pid_of: the running cluster's pid (not a zombie, not a reused pid).
pid_of() {
  local pid stat
  [ -f "$DIR/pid" ] || return 1
  pid=$(cat "$DIR/pid")
  stat=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
  [ "${stat:0:1}" != Z ] || return 1
  grep -q simcluster "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  if pid_of >/dev/null; then
    log "already running (pid $(pid_of), $DIR)"
    cat "$DIR/env"
    return
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR/bin"
  log "binaries (hack/tool.sh: cached, else downloaded, else built from the Go module proxy: ~15 min on 2 cores)"
  tools
  local built=$SECONDS
  build_cli "$DIR/bin/simcluster"
  log "built the cluster command (go build ./test/e2e/cmd/simcluster) in $((SECONDS - built))s"
  local begin=$SECONDS
  # setsid: the cluster leads its own session, apart from the caller's
  # terminal and process group (Ctrl-C in the caller is the caller's trap's
  # business, which calls stop).
  setsid "$DIR/bin/simcluster" --dir "$DIR" "$@" >"$DIR/simcluster.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$DIR/pid"
  # The command writes env once every component works.
  while [ ! -s "$DIR/env" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the cluster exited during start:"; cat "$DIR/simcluster.log" >&2; exit 1
    fi
    if [ $((SECONDS - begin)) -ge "$START_TIMEOUT" ]; then
      log "not up after ${START_TIMEOUT}s:"; cat "$DIR/simcluster.log" >&2; stop; exit 1
    fi
    sleep 0.2
  done
  log "up in $((SECONDS - begin))s (pid $pid; logs in $DIR/logs; stop with: hack/simcluster.sh stop)"
  cat "$DIR/env"
}

stop() {
  local pid
  if pid=$(pid_of); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do pid_of >/dev/null || break; sleep 0.2; done
    if pid_of >/dev/null; then
      # Its children die with it (Pdeathsig); anything left in its session
      # (setsid made it the session leader) goes too.
      log "still running after 30s; killing it and its session"
      kill -KILL "$pid" 2>/dev/null || true
      pkill -KILL -s "$pid" 2>/dev/null || true
    fi
    log "stopped (pid $pid)"
  fi
  if [ "${SIMCLUSTER_KEEP:-}" = 1 ]; then
    log "kept $DIR"
  else
    rm -rf "$DIR"
  fi
}

env_() {
  pid_of >/dev/null || { log "not running ($DIR); hack/simcluster.sh start"; exit 1; }
  cat "$DIR/env"
}

status() {
  if pid_of >/dev/null; then echo "running (pid $(pid_of), $DIR)"; else echo "not running"; exit 1; fi
}

kubeconfig_for() {
  local ns=${1:?namespace} sa=${2:?serviceaccount} out=${3:-} admin token server ca
  pid_of >/dev/null || { log "not running ($DIR)"; exit 1; }
  out=${out:-$DIR/kubeconfig-$ns-$sa}
  admin=$DIR/kubeconfig
  token=$(kubectl --kubeconfig "$admin" create token "$sa" -n "$ns" --duration=24h)
  server=$(kubectl --kubeconfig "$admin" config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl --kubeconfig "$admin" config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  (umask 077 && cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: simcluster
  cluster: {server: "$server", certificate-authority-data: $ca}
users:
- name: $sa
  user: {token: $token}
contexts:
- name: simcluster
  context: {cluster: simcluster, user: $sa, namespace: $ns}
current-context: simcluster
EOF
  )
  echo "$out"
}

run() {
  tools
  local bin
  bin=$(mktemp -d)/simcluster
  build_cli "$bin"
  trap 'rm -rf "$(dirname "$bin")"' EXIT
  "$bin" "$@"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start) start "$@" ;;
  stop) stop ;;
  env) env_ ;;
  status) status ;;
  kubeconfig-for) kubeconfig_for "$@" ;;
  run) run "$@" ;;
  tools) tools ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
