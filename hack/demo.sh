#!/usr/bin/env bash
# The README's first command (`make demo`): the operator's main job with no
# cluster of yours. Starts a simulated cluster on this machine (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok fake nodes,
# with real servers behind the pods: redis-server behind the cache,
# PostgreSQL 15 behind the shards, RabbitMQ behind the broker;
# hack/simcluster.sh), installs the CRD, runs the operator binary against it,
# applies config/samples/ in a namespace enforcing Pod Security "restricted",
# waits until the platform is Ready and prints the platform, its conditions
# and its children.
#
# The cluster's binaries come from hack/tool.sh: cached in
# ~/.cache/parser-operator, else downloaded from their release sites
# (seconds), else built from the Go module proxy (~15 min on 2 cores). Each
# step prints its elapsed time; the platform's progress is counted from its
# `kubectl apply`.
#
#   DEMO_KEEP=1 make demo   keeps everything running until Ctrl-C and prints
#                           the kubeconfig to poke at it with kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${DEMO_NAMESPACE:-parser}
TIMEOUT=${DEMO_TIMEOUT:-300}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/parser-operator-demo.XXXXXX")
export SIMCLUSTER_DIR="$WORK/cluster"
CLUSTER_TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
operator_pid=
build_pid=
say() { printf '\n== %s\n' "$*"; }
# took START WHAT: one line with the seconds since START.
took() { printf '   %s: %ds\n' "$2" "$((SECONDS - $1))"; }

cleanup() {
  [ -n "$build_pid" ] && { kill "$build_pid" 2>/dev/null || true; wait "$build_pid" 2>/dev/null || true; }
  [ -n "$operator_pid" ] && { kill "$operator_pid" 2>/dev/null || true; wait "$operator_pid" 2>/dev/null || true; }
  hack/simcluster.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tool NAME: hack/tool.sh NAME with its messages indented, then one line:
# how the binary came (cached, downloaded, built from source) and how long.
tool() {
  local begin=$SECONDS how=cached
  { hack/tool.sh "$1" 2>&1 >/dev/null | tee "$WORK/tool.log" | sed -u 's/^/     /'; } ||
    { echo "   hack/tool.sh $1 failed"; exit 1; }
  grep -q '^tool.sh: downloaded' "$WORK/tool.log" && how=downloaded
  grep -q '^tool.sh: built' "$WORK/tool.log" && how="built from source"
  printf '   %-24s %-18s %4ds\n' "$1" "$how" "$((SECONDS - begin))"
}

begin=$SECONDS
say "test servers (redis, PostgreSQL, RabbitMQ), installed if missing"
hack/install-test-deps.sh
took "$begin" "checked"

# The operator builds while the cluster's binaries come and the cluster
# starts (mostly waiting on its components).
(
  b=$SECONDS
  go build -o bin/parser-operator ./cmd >"$WORK/build.log" 2>&1
  echo $((SECONDS - b)) >"$WORK/build.seconds"
) &
build_pid=$!

say "the cluster's binaries (cached, else downloaded, else built from the Go module proxy: ~15 min on 2 cores)"
for t in "${CLUSTER_TOOLS[@]}"; do tool "$t"; done

say "starting the simulated cluster"
begin=$SECONDS
hack/simcluster.sh start >/dev/null
eval "$(hack/simcluster.sh env)"
took "$begin" "cluster up"
kubectl get nodes

say "installing the CRD"
begin=$SECONDS
kubectl apply --server-side -f config/crd/bases >/dev/null
kubectl wait --for=condition=Established crd/parserplatforms.platform.vkparser.io --timeout=60s
took "$begin" "CRD established"

say "the operator (go build ./cmd, started with the binaries; log: $WORK/operator.log)"
begin=$SECONDS
wait "$build_pid" || { cat "$WORK/build.log"; exit 1; }
build_pid=
echo "   built in $(cat "$WORK/build.seconds")s, alongside the cluster; waited $((SECONDS - begin))s for it here"
bin/parser-operator --health-probe-bind-address=0 --metrics-bind-address=0 >"$WORK/operator.log" 2>&1 &
operator_pid=$!

say "kubectl apply -f config/samples/ (namespace $NAMESPACE, Pod Security restricted enforced)"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
applied=$SECONDS
kubectl apply -n "$NAMESPACE" -f config/samples/

say "waiting until the platform is Ready (at most ${TIMEOUT}s; seconds since kubectl apply, a line when the status changes)"
last= shown=-10
while :; do
  ready=$(kubectl get pp vk -n "$NAMESPACE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  waiting=$(kubectl get pp vk -n "$NAMESPACE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null || true)
  now=$((SECONDS - applied))
  # A line when the status changes, and every 10 s while it does not.
  if [ "$ready $waiting" != "$last" ] || [ $((now - shown)) -ge 10 ] || [ "$ready" = True ]; then
    printf '  %3ds Ready=%s %s\n' "$now" "${ready:-?}" "$waiting"
    last="$ready $waiting" shown=$now
  fi
  [ "$ready" = True ] && break
  if [ "$now" -ge "$TIMEOUT" ]; then
    echo "not Ready ${TIMEOUT}s after kubectl apply; the operator's log:"; tail -30 "$WORK/operator.log"; exit 1
  fi
  kill -0 "$operator_pid" 2>/dev/null || { echo "the operator exited:"; tail -30 "$WORK/operator.log"; exit 1; }
  sleep 1
done
echo "   Ready ${now}s after kubectl apply (${SECONDS}s since make demo started)"

say "kubectl get parserplatforms"
kubectl get parserplatforms -n "$NAMESPACE"

say "conditions"
kubectl get parserplatform vk -n "$NAMESPACE" \
  -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}' | column -t -s $'\t'
kubectl get parserplatform vk -n "$NAMESPACE" -o jsonpath='{"cache: "}{.status.cache}{"\n"}'

say "children (label app.kubernetes.io/instance=vk)"
kubectl get serviceaccounts,configmaps,secrets,services,deployments,statefulsets,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies,persistentvolumeclaims \
  -n "$NAMESPACE" -l app.kubernetes.io/instance=vk
kubectl get pods -n "$NAMESPACE" -o wide | awk 'NR <= 13'  # awk reads all: no SIGPIPE under pipefail

if [ "${DEMO_KEEP:-}" = 1 ]; then
  say "still running; in another shell:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl get pp -n $NAMESPACE; kubectl describe pp vk -n $NAMESPACE"
  echo "Ctrl-C stops the operator and the cluster and removes $WORK."
  wait "$operator_pid"
fi
