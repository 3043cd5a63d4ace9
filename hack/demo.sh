#!/usr/bin/env bash
# The README's first command (`make demo`): the operator's main job with no
# cluster. Starts a local control plane (kube-apiserver + etcd, the envtest
# binaries: downloaded or built from the Go module proxy on first use, then
# cached), installs the CRD, runs the operator binary against it, applies
# config/samples/, waits until the operator has reconciled the sample, and
# prints the platform, its conditions and its children.
#
#   DEMO_KEEP=1 make demo   keeps everything running until Ctrl-C and prints
#                           the kubeconfig to poke at it with kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${DEMO_NAMESPACE:-parser}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/parser-operator-demo.XXXXXX")
export KUBECONFIG="$WORK/kubeconfig"
pids=()
say() { printf '\n== %s\n' "$*"; }

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "envtest binaries (the first run builds kube-apiserver and etcd from the Go module proxy: ~6 min on 2 cores)"
KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
export KUBEBUILDER_ASSETS
echo "$KUBEBUILDER_ASSETS"

say "building the operator"
go build -o bin/parser-operator ./cmd
go build -o "$WORK/controlplane" ./hack/controlplane

say "starting the local control plane"
"$WORK/controlplane" --write-kubeconfig "$KUBECONFIG" >"$WORK/controlplane.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  [ -s "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$WORK/controlplane.log"; exit 1; }
  sleep 0.5
done
kubectl get crd parserplatforms.platform.vkparser.io

say "running the operator (log: $WORK/operator.log)"
bin/parser-operator --health-probe-bind-address=0 --metrics-bind-address=0 >"$WORK/operator.log" 2>&1 &
pids+=($!)

say "kubectl apply -f config/samples/ (namespace $NAMESPACE)"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$NAMESPACE" -f config/samples/

say "waiting until the operator has reconciled the sample"
kubectl wait -n "$NAMESPACE" parserplatform/vk --for=jsonpath='{.status.observedGeneration}'=1 --timeout=120s

say "kubectl get parserplatforms"
kubectl get parserplatforms -n "$NAMESPACE"

say "conditions"
kubectl get parserplatform vk -n "$NAMESPACE" \
  -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}' | column -t -s $'\t'

say "children (label app.kubernetes.io/instance=vk)"
kubectl get serviceaccounts,configmaps,secrets,services,deployments,statefulsets,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies \
  -n "$NAMESPACE" -l app.kubernetes.io/instance=vk

cat <<'NOTE'

This control plane runs no kubelet, scheduler or controller-manager: the
children exist, but no pod starts, so Ready stays False ("waiting for auth 0/3
ready, ..."). That is the honest status of a platform whose pods never run.
NOTE

if [ "${DEMO_KEEP:-}" = 1 ]; then
  say "still running; in another shell:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl get pp -n $NAMESPACE; kubectl describe pp vk -n $NAMESPACE"
  echo "Ctrl-C stops the operator and the control plane and removes $WORK."
  wait "${pids[1]}"
fi
