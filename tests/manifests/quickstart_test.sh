#!/usr/bin/env bash
# tools/quickstart stays true: run as the README says, it ends with a token obtained from a pod
# through 169.254.169.254 (real MIC and NMI with the manifests' ServiceAccounts, real apiserver,
# Azure emulator, iptables redirect), and leaves nothing behind. Then --keep with the sanitizer
# build: the printed instructions work on the running cluster, and SIGTERM tears it down.
# Exit 0 = pass, 77 = skipped (not root).
set -uo pipefail
root="${AAD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: tools/quickstart needs root (network namespaces, iptables)"; exit 77; }

# shellcheck source=../support/checks.sh
source "$root/tests/support/checks.sh"
out="$(mktemp)" keep_out="$(mktemp)" qs_pid=""
trap '[[ -n $qs_pid ]] && kill -TERM "$qs_pid" 2>/dev/null; rm -f "$out" "$keep_out"' EXIT
# The network namespaces a run created (from its output) that still exist.
leftovers() { # OUTPUT-FILE
  local run
  run="$(grep -o 'node namespace aadqs-[0-9]*-[0-9a-f]*-node' "$1" | head -n1 | awk '{print $3}')"
  run="${run%-node}"
  [[ -n $run ]] || { echo "unknown"; return; }
  ip netns list | grep -c "^$run-" || true
}

# --- as a user runs it -----------------------------------------------------------------------------
"$root/tools/quickstart" >"$out" 2>&1
status=$?
check "tools/quickstart exits 0 (status $status)" test "$status" -eq 0
check "it says the token was obtained" grep -q '^quickstart: token obtained' "$out"
check "MIC runs with its ServiceAccount's token" grep -q 'MIC as system:serviceaccount:default:aad-pod-id-mic-service-account' "$out"
check "NMI runs with its ServiceAccount's token" grep -q 'NMI in aadqs-.* as system:serviceaccount:default:aad-pod-id-nmi-service-account' "$out"
check "NMI installed the DNAT to itself" grep -q -- '-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579' "$out"
check "the AzureAssignedIdentity is Assigned" grep -Eq 'default +demo-default-demo +demo +default +aks-nodepool1-vmss000000 +Assigned' "$out"
check "MIC put the identity on the scale set" grep -q 'identities on the scale set (Azure emulator): \[".*/userAssignedIdentities/demo-identity"\]' "$out"
check "the SDK got a token in the pod" grep -q 'ManagedIdentityCredential(client_id=3b2f6a9c-1d4e-4f8a-9b7c-2e5d6f7a8b9c).get_token(...) from 10.244.0.11: a [0-9]*-character token' "$out"
check "the raw response is shown with the token shortened" grep -Eq '"access_token": "[A-Za-z0-9_-]{12}\.\.\.[A-Za-z0-9_-]{6}"' "$out"
check "every step prints its duration" test "$(grep -c '^==> ' "$out")" -le "$(grep -c '^    done in ' "$out")"
check "no network namespace is left" test "$(leftovers "$out")" = 0
if ((failed)); then echo "--- tools/quickstart output ---"; cat "$out"; fi

# --- --keep, with the sanitizer build ---------------------------------------------------------------
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "$root/tools/quickstart" --keep \
  --binary "${AAD_BUILD_ROOT:-$root/build}/app/aad-pod-identity" >"$keep_out" 2>&1 &
qs_pid=$!
for _ in $(seq 600); do grep -q 'Press Ctrl-C' "$keep_out" && break; kill -0 "$qs_pid" 2>/dev/null || break; sleep 0.5; done
if grep -q 'Press Ctrl-C' "$keep_out"; then
  ok "--keep leaves the cluster running and says how to poke it"
  kubeconfig="$(sed -n 's/^  export KUBECONFIG=//p' "$keep_out")"
  aai="$(KUBECONFIG=$kubeconfig kubectl get azureidentities,azureidentitybindings,azureassignedidentities -A 2>&1)"
  check "the printed kubectl command lists the Assigned identity" grep -Eq 'demo-default-demo .* Assigned' <<<"$aai"
  node_cmd="$(grep -o 'ip netns exec aadqs-[^ ]*-node iptables -t nat -S aad-metadata' "$keep_out")"
  check "the printed iptables command shows the chain" grep -q 'DNAT --to-destination 127.0.0.1:2579' <<<"$($node_cmd 2>&1)"
  pod_ns="$(grep -o 'ip netns exec aadqs-[^ ]*-demo' "$keep_out" | awk '{print $4}')"
  body="$(ip netns exec "$pod_ns" curl -s -H Metadata:true \
    'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/')"
  check "the printed curl from the pod gets a token" grep -q '"access_token":"ey' <<<"$body"
  # The printed health and metrics commands of both roles (MIC on the host, NMI in the node).
  mic_health="$(grep -o 'curl -s http://127.0.0.1:[0-9]*/healthz;' "$keep_out" | sed 's/;$//')"
  check "the printed MIC /healthz says Active (the leader)" test "$($mic_health 2>&1)" = Active
  mic_metrics="$(grep -o 'curl -s http://127.0.0.1:[0-9]*/metrics' "$keep_out" | head -1)"
  check "the printed MIC /metrics has the original's metric names" \
    grep -q '^aadpodidentity_assigned_identity_addition_count' <<<"$($mic_metrics 2>&1)"
  nmi_health="$(grep -o 'ip netns exec aadqs-[^ ]*-node curl -s http://127.0.0.1:8085/healthz' "$keep_out")"
  check "the printed NMI /healthz says Active (redirect installed)" test "$($nmi_health 2>&1)" = Active
  nmi_metrics="$(grep -o 'ip netns exec aadqs-[^ ]*-node curl -s http://127.0.0.1:9090/metrics' "$keep_out")"
  check "the printed NMI /metrics counts the pod's token request" \
    grep -q '^aadpodidentity_nmi_operations_duration_seconds_count{.*status_code="200"' <<<"$($nmi_metrics 2>&1)"
  kill -TERM "$qs_pid"
  wait "$qs_pid"
  status=$?
  qs_pid=""
  check "SIGTERM tears it down and the exit status is 0 ($status)" test "$status" -eq 0
  check "no network namespace is left after --keep" test "$(leftovers "$keep_out")" = 0
else
  fail "--keep reached the poke instructions"
fi
if ((failed)); then echo "--- tools/quickstart --keep output ---"; cat "$keep_out"; fi
finish
