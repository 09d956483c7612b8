#!/usr/bin/env bash
# Proves that tools/kube-testenv runs a real kube-apiserver: READY line,
# RBAC enforcement, TokenRequest, CRD validation and pruning, the node/pod
# helpers and the status subresource, two instances side by side, cleanup on
# SIGTERM and restart on the same data directory.
# Exit 0 = pass. Needs AAD_SOURCE_ROOT (falls back to this file's repo).
set -uo pipefail

root="${AAD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# shellcheck source=../../tools/kube-testenv/fixture.sh
source "$root/tools/kube-testenv/fixture.sh"

# shellcheck source=../support/checks.sh
source "$root/tests/support/checks.sh"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/testenv-test.XXXXXX")"
extra_pids=()
cleanup() {
  local p
  for p in "${extra_pids[@]}"; do
    kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  testenv_stop
  rm -rf "$scratch"
}
trap cleanup EXIT

# wait_ready OUTFILE PID -> prints the kubeconfig path from the READY line
wait_ready() {
  local out=$1 pid=$2 deadline=$((SECONDS + 180)) line
  while ((SECONDS < deadline)); do
    line="$(grep -m1 '^READY ' "$out" 2>/dev/null)" && { echo "${line#READY }"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
# stop_wait PID: SIGTERM and wait (60 s at most)
stop_wait() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 1
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  wait "$pid" 2>/dev/null
}

echo "# building (a cold build takes about 4 minutes on 2 cores) and starting kube-testenv"
if ! testenv_start; then
  fail "testenv_start (READY line)"
  finish
fi
ok "testenv_start saw the READY line; KUBECONFIG=$KUBECONFIG"
check "the kubeconfig path is absolute and exists" test -f "$KUBECONFIG" -a "${KUBECONFIG:0:1}" = /

# --- basic API access ------------------------------------------------------
if kubectl get ns default kube-system >/dev/null; then ok "kubectl get ns"; else fail "kubectl get ns"; fi
check "/readyz is ok" bash -c '[[ $(kubectl get --raw /readyz) == ok ]]'
if kubectl auth whoami -o jsonpath='{.status.userInfo.groups}' | grep -q system:masters; then
  ok "admin user is in system:masters"
else
  fail "admin user is in system:masters"
fi
server_version="$(kubectl get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
check "server reports a real version ($server_version)" bash -c "[[ '$server_version' == v1.* && '$server_version' != *master* ]]"

# --- RBAC + TokenRequest ------------------------------------------------------
ns="$(testenv_namespace rbac)" && ok "testenv_namespace created $ns" || fail "testenv_namespace"
kubectl -n "$ns" create serviceaccount reader >/dev/null
if tok="$(testenv_token reader "$ns")" && [[ $tok == *.*.* ]]; then
  ok "TokenRequest returned a JWT for serviceaccount $ns/reader"
else
  fail "TokenRequest (kubectl create token)"
fi
as_sa() { kubectl --token="$tok" "$@"; }
who="$(as_sa auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1)"
check "the token authenticates as system:serviceaccount:$ns:reader" test "$who" = "system:serviceaccount:$ns:reader"
out="$(as_sa -n "$ns" get pods 2>&1)"
if [[ $out == *Forbidden* || $out == *forbidden* ]]; then
  ok "RBAC: without a RoleBinding, 'get pods' is Forbidden"
else
  fail "RBAC: expected Forbidden without a RoleBinding, got: $out"
fi
kubectl -n "$ns" create role pod-reader --verb=get,list,watch --resource=pods >/dev/null
kubectl -n "$ns" create rolebinding reader --role=pod-reader --serviceaccount="$ns:reader" >/dev/null
allowed=0
for _ in $(seq 1 50); do # the RBAC authorizer's informer catches up within a moment
  if as_sa -n "$ns" get pods >/dev/null 2>&1; then allowed=1; break; fi
  sleep 0.2
done
check "RBAC: after the RoleBinding, 'get pods' is allowed" test $allowed = 1
out="$(as_sa -n "$ns" get secrets 2>&1)"
check "RBAC: the RoleBinding does not grant secrets" bash -c '[[ $0 == *orbidden* ]]' "$out"
out="$(as_sa -n default get pods 2>&1)"
check "RBAC: the RoleBinding does not grant other namespaces" bash -c '[[ $0 == *orbidden* ]]' "$out"

# --- CRD validation and pruning --------------------------------------------
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.example.com
spec:
  group: testenv.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue]}
EOF
if kubectl wait --for=condition=Established --timeout=60s crd/widgets.testenv.example.com >/dev/null; then
  ok "CRD created and Established"
else
  fail "CRD Established"
fi
ns2="$(testenv_namespace crd)"
out="$(kubectl -n "$ns2" apply -f - 2>&1 <<'EOF'
apiVersion: testenv.example.com/v1
kind: Widget
metadata: {name: bad}
spec: {size: 42, color: green}
EOF
)"
if [[ $out == *Invalid* && $out == *spec.size* ]]; then
  ok "CRD schema: an invalid object is rejected ($(grep -o 'spec.size[^,]*' <<<"$out" | head -n1))"
else
  fail "CRD schema: expected rejection, got: $out"
fi
out="$(kubectl -n "$ns2" apply --validate=false -f - 2>&1 <<'EOF'
apiVersion: testenv.example.com/v1
kind: Widget
metadata: {name: good}
spec: {size: 3, color: red, notInSchema: dropped}
EOF
)" || fail "CRD: creating a valid object with an unknown field: $out"
spec="$(kubectl -n "$ns2" get widget good -o jsonpath='{.spec}' 2>&1)"
if [[ $spec == *'"size":3'* && $spec != *notInSchema* ]]; then
  ok "CRD pruning: the unknown field was pruned ($spec)"
else
  fail "CRD pruning: got spec $spec"
fi
out="$(kubectl -n "$ns2" apply --validate=strict -f - 2>&1 <<'EOF'
apiVersion: testenv.example.com/v1
kind: Widget
metadata: {name: strict}
spec: {size: 3, notInSchema: x}
EOF
)"
check "CRD strict field validation rejects unknown fields" bash -c '[[ $0 == *unknown\ field* ]]' "$out"

# --- node/pod helpers and the status subresource ---------------------------
node="node-$RANDOM"
testenv_create_node "$node" "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/$node" &&
  ok "testenv_create_node $node" || fail "testenv_create_node"
check "node has its providerID" bash -c '[[ $(kubectl get node "$0" -o jsonpath="{.spec.providerID}") == azure:///*/$0 ]]' "$node"
testenv_create_pod "$ns2" demo "$node" app=demo aadpodidbinding=sel && ok "testenv_create_pod" || fail "testenv_create_pod"
got="$(kubectl -n "$ns2" get pod demo -o jsonpath='{.spec.nodeName} {.spec.hostNetwork} {.metadata.labels.aadpodidbinding} {.status.phase}')"
check "pod is bound to the node, labelled, Pending ($got)" test "$got" = "$node  sel Pending"
testenv_set_pod_status "$ns2" demo Running 10.244.1.7 fd00::7 && ok "testenv_set_pod_status" || fail "testenv_set_pod_status"
got="$(kubectl -n "$ns2" get pod demo -o jsonpath='{.status.phase} {.status.podIP} {.status.podIPs[*].ip}')"
check "pod status set through the subresource ($got)" test "$got" = "Running 10.244.1.7 10.244.1.7 fd00::7"
out="$(kubectl -n "$ns2" get pods --field-selector=spec.nodeName="$node",status.phase=Running -l app=demo -o name)"
check "field and label selectors find the pod ($out)" test "$out" = "pod/demo"

# --- a second instance side by side; SIGTERM removes its temp dir ----------
"$root/tools/kube-testenv/start" --watch-parent >"$scratch/b.out" 2>"$scratch/b.err" &
pid_b=$!
extra_pids+=("$pid_b")
if kc_b="$(wait_ready "$scratch/b.out" "$pid_b")"; then
  ok "second instance READY ($kc_b)"
  dir_b="$(dirname "$kc_b")"
  srv_a="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  srv_b="$(kubectl --kubeconfig "$kc_b" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  check "the two instances listen on different ports ($srv_a, $srv_b)" test "$srv_a" != "$srv_b"
  kubectl --kubeconfig "$kc_b" create namespace only-in-b >/dev/null
  check "the instances have separate data" bash -c '! kubectl get ns only-in-b >/dev/null 2>&1 && kubectl --kubeconfig "$0" get ns only-in-b >/dev/null' "$kc_b"
  check "the first instance still works while the second runs" bash -c 'kubectl get ns "$0" >/dev/null' "$ns"
  check "the temp dir exists while running" test -d "$dir_b"
  stop_wait "$pid_b"
  rc=$?
  check "second instance exits 0 on SIGTERM (rc=$rc)" test "$rc" = 0
  check "SIGTERM removed the temp dir $dir_b" test ! -e "$dir_b"
else
  fail "second instance READY; its stderr:"
  tail -n 30 "$scratch/b.err"
fi

# --- restart on the same --dir keeps the data ------------------------------
persist="$scratch/persist"
"$root/tools/kube-testenv/start" --watch-parent --dir "$persist" >"$scratch/c1.out" 2>"$scratch/c1.err" &
pid_c=$!
extra_pids+=("$pid_c")
if kc_c="$(wait_ready "$scratch/c1.out" "$pid_c")"; then
  ok "instance with --dir READY"
  kubectl --kubeconfig "$kc_c" create namespace persisted >/dev/null
  kubectl --kubeconfig "$kc_c" -n persisted create configmap cm --from-literal=k=v1 >/dev/null
  kubectl --kubeconfig "$kc_c" -n persisted create serviceaccount sa >/dev/null
  tok_c="$(kubectl --kubeconfig "$kc_c" -n persisted create token sa)"
  rv1="$(kubectl --kubeconfig "$kc_c" -n persisted get configmap cm -o jsonpath='{.metadata.resourceVersion}')"
  stop_wait "$pid_c"
  check "--dir is kept after SIGTERM" test -d "$persist/etcd"
  "$root/tools/kube-testenv/start" --watch-parent --dir "$persist" >"$scratch/c2.out" 2>"$scratch/c2.err" &
  pid_c=$!
  extra_pids+=("$pid_c")
  if kc_c2="$(wait_ready "$scratch/c2.out" "$pid_c")"; then
    ok "restart on the same --dir READY"
    got="$(kubectl --kubeconfig "$kc_c2" -n persisted get configmap cm -o jsonpath='{.data.k} {.metadata.resourceVersion}')"
    check "data survived the restart ($got)" test "$got" = "v1 $rv1"
    who="$(kubectl --kubeconfig "$kc_c2" --token="$tok_c" auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1)"
    check "a token issued before the restart is still valid" test "$who" = "system:serviceaccount:persisted:sa"
    stop_wait "$pid_c"
  else
    fail "restart on the same --dir READY; its stderr:"
    tail -n 30 "$scratch/c2.err"
  fi
else
  fail "instance with --dir READY; its stderr:"
  tail -n 30 "$scratch/c1.err"
fi

# --- the fixture's own instance stops cleanly -------------------------------
dir_a="$(dirname "$KUBECONFIG")"
testenv_stop
check "testenv_stop removed the temp dir of the fixture instance" test ! -e "$dir_a"

finish
