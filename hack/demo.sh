#!/usr/bin/env bash
# The README's first command (`make demo`): the operator's main job with no
# cluster of yours. Starts a simulated cluster on this machine (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok fake nodes,
# with real servers behind the pods: redis-server behind the cache,
# PostgreSQL 15 behind the shards, RabbitMQ behind the broker;
# hack/simcluster.sh, binaries built from the Go module proxy on first use
# and cached), installs the CRD,
# runs the operator binary against it, applies config/samples/ in a namespace
# enforcing Pod Security "restricted", waits until the platform is Ready
# (printing progress) and prints the platform, its conditions and its
# children.
#
#   DEMO_KEEP=1 make demo   keeps everything running until Ctrl-C and prints
#                           the kubeconfig to poke at it with kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${DEMO_NAMESPACE:-parser}
TIMEOUT=${DEMO_TIMEOUT:-300}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/parser-operator-demo.XXXXXX")
export SIMCLUSTER_DIR="$WORK/cluster"
operator_pid=
build_pid=
say() { printf '\n== %s\n' "$*"; }

cleanup() {
  [ -n "$build_pid" ] && { kill "$build_pid" 2>/dev/null || true; wait "$build_pid" 2>/dev/null || true; }
  [ -n "$operator_pid" ] && { kill "$operator_pid" 2>/dev/null || true; wait "$operator_pid" 2>/dev/null || true; }
  hack/simcluster.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "installing the test servers (redis, PostgreSQL, RabbitMQ) if missing"
hack/install-test-deps.sh

# The operator builds while the cluster starts (mostly waiting on its
# components): a warm demo is then under a minute.
go build -o bin/parser-operator ./cmd >"$WORK/build.log" 2>&1 &
build_pid=$!

say "starting the simulated cluster (the first run builds kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok from the Go module proxy: ~8-18 min on 2 cores; then seconds)"
hack/simcluster.sh start
eval "$(hack/simcluster.sh env)"
kubectl get nodes

say "installing the CRD"
kubectl apply --server-side -f config/crd/bases >/dev/null
kubectl wait --for=condition=Established crd/parserplatforms.platform.vkparser.io --timeout=60s

say "building (started with the cluster) and running the operator (log: $WORK/operator.log)"
wait "$build_pid" || { cat "$WORK/build.log"; exit 1; }
build_pid=
bin/parser-operator --health-probe-bind-address=0 --metrics-bind-address=0 >"$WORK/operator.log" 2>&1 &
operator_pid=$!

say "kubectl apply -f config/samples/ (namespace $NAMESPACE, Pod Security restricted enforced)"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
kubectl apply -n "$NAMESPACE" -f config/samples/

say "waiting until the platform is Ready (at most ${TIMEOUT}s)"
deadline=$((SECONDS + TIMEOUT))
while :; do
  ready=$(kubectl get pp vk -n "$NAMESPACE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  waiting=$(kubectl get pp vk -n "$NAMESPACE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null || true)
  printf '  %3ds Ready=%s %s\n' "$((SECONDS))" "${ready:-?}" "$waiting"
  [ "$ready" = True ] && break
  if [ $SECONDS -ge $deadline ]; then
    echo "not Ready after ${TIMEOUT}s; the operator's log:"; tail -30 "$WORK/operator.log"; exit 1
  fi
  kill -0 "$operator_pid" 2>/dev/null || { echo "the operator exited:"; tail -30 "$WORK/operator.log"; exit 1; }
  sleep 1
done

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
