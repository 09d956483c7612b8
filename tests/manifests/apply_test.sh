#!/usr/bin/env bash
# Suite manifests, against the real kube-apiserver (tools/kube-testenv):
#  - every manifest passes server-side validation (--dry-run=server), applies, and re-applies as
#    a no-op (client-side "unchanged"; server-side apply leaves every resourceVersion as it was);
#  - the printer columns of the CRDs;
#  - objects written the way v1.8.17 users write them apply and read back unchanged; objects with
#    the pre-1.6 capitalised keys are rejected by kubectl naming the field;
#  - RBAC: each ServiceAccount can do what its role needs and is denied the rest, checked with
#    `kubectl auth can-i --as` and with real TokenRequest tokens.
# Exit 0 = pass. Needs AAD_SOURCE_ROOT (falls back to this file's repo).
set -uo pipefail

root="${AAD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
here="$root/tests/manifests"
# shellcheck source=../../tools/kube-testenv/fixture.sh
source "$root/tools/kube-testenv/fixture.sh"

# shellcheck source=../support/checks.sh
source "$root/tests/support/checks.sh"
quiet() { "$@" >/dev/null; }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/manifests-test.XXXXXX")"
trap 'testenv_stop; rm -rf "$scratch"' EXIT
testenv_start || { fail "kube-testenv started"; finish; }
export TESTENV_KUBECTL
M="$root/manifests"

# apply_twice FILE [kubectl args...]: dry-run, apply, apply again; checks the second is a no-op.
apply_twice() {
  local f=$1 name
  shift
  name="${f#"$root"/}"
  if kubectl apply --dry-run=server "$@" -f "$f" >"$scratch/dry" 2>&1; then
    ok "$name passes server-side validation (--dry-run=server)"
  else
    fail "$name passes server-side validation: $(cat "$scratch/dry")"
  fi
  if kubectl apply "$@" -f "$f" >"$scratch/first" 2>&1; then
    ok "$name applies ($(wc -l <"$scratch/first") objects)"
  else
    fail "$name applies: $(cat "$scratch/first")"
    return
  fi
  kubectl apply "$@" -f "$f" >"$scratch/second" 2>&1
  local changed
  changed="$(grep -v ' unchanged$' "$scratch/second")"
  check "$name re-applied is a no-op (every object unchanged)${changed:+: $changed}" test -z "$changed"
}

# resource_versions FILE [-n NS]: "kind/name rv" of every object in FILE, as the server has them.
resource_versions() {
  local f=$1
  shift
  kubectl get "$@" -f "$f" -o jsonpath='{range .items[*]}{.kind}/{.metadata.name} {.metadata.resourceVersion}{"\n"}{end}'
}

# --- the variants first (they share cluster-scoped names with the main file) -----------------------
kubectl create namespace kube-system >/dev/null 2>&1
apply_twice "$M/managed-mode.yaml"
apply_twice "$M/noazurejson.yaml"
apply_twice "$M/aad-pod-identity.yaml"
kubectl wait --for condition=established --timeout=60s crd/azureidentities.aadpodidentity.k8s.io \
  crd/azureidentitybindings.aadpodidentity.k8s.io crd/azureassignedidentities.aadpodidentity.k8s.io \
  crd/azurepodidentityexceptions.aadpodidentity.k8s.io >/dev/null
apply_twice "$M/mic-exception.yaml"
for f in "$M"/demo/*.yaml; do apply_twice "$f"; done

# Server-side apply over the client-side apply: no field conflict (atomic fields such as fieldRef
# are written as the server defaults them), and a second server-side apply changes nothing.
if kubectl apply --server-side -f "$M/aad-pod-identity.yaml" >"$scratch/ssa" 2>&1; then
  ok "server-side apply of aad-pod-identity.yaml over the client-side one: no conflict"
  before="$(resource_versions "$M/aad-pod-identity.yaml")"
  kubectl apply --server-side -f "$M/aad-pod-identity.yaml" >/dev/null 2>&1
  check "a second server-side apply changes no object (same resourceVersions)" \
    test "$before" = "$(resource_versions "$M/aad-pod-identity.yaml")"
else
  fail "server-side apply of aad-pod-identity.yaml: $(cat "$scratch/ssa")"
fi

# --- printer columns -------------------------------------------------------------------------------
header() { kubectl get "$1" -A 2>/dev/null | head -n1 | tr -s ' '; }
check "AzureIdentity columns: NAMESPACE NAME TYPE CLIENTID AGE" test "$(header azureidentities)" = "NAMESPACE NAME TYPE CLIENTID AGE"
check "AzureIdentityBinding columns: NAMESPACE NAME AZUREIDENTITY SELECTOR AGE" \
  test "$(header azureidentitybindings)" = "NAMESPACE NAME AZUREIDENTITY SELECTOR AGE"
row="$(kubectl get azureidentity demo -n default --no-headers | tr -s ' ')"
check "kubectl get azureidentity shows type and client id ($row)" \
  grep -q '^demo 0 3b2f6a9c-1d4e-4f8a-9b7c-2e5d6f7a8b9c ' <<<"$row"

# --- objects as users write them -------------------------------------------------------------------
ns="$(testenv_namespace users)"
if kubectl apply -n "$ns" -f "$here/testdata/users-objects.yaml" >"$scratch/users" 2>&1; then
  ok "the objects users write apply ($(wc -l <"$scratch/users"))"
  if "$here/roundtrip.py" "$here/testdata/users-objects.yaml" "$ns" >"$scratch/rt"; then
    ok "they read back unchanged ($(grep -c '^ok' "$scratch/rt") objects)"
  else
    fail "they read back unchanged:"
    cat "$scratch/rt"
  fi
  kubectl apply -n "$ns" -f "$here/testdata/users-objects.yaml" >"$scratch/users2" 2>&1
  check "re-applying them is a no-op" test -z "$(grep -v ' unchanged$' "$scratch/users2")"
  aai="$(kubectl get azureassignedidentities -n "$ns" --no-headers | tr -s ' ' | sort)"
  check "AzureAssignedIdentity columns show pod, namespace, node and state" \
    grep -q '^demo-pod-default-azure-identity demo-pod default aks-nodepool1-12345678-vmss000000 Assigned ' <<<"$aai"
  check "AzureAssignedIdentity header: NAME POD NAMESPACE NODE STATE AGE" \
    test "$(kubectl get azureassignedidentities -n "$ns" | head -n1 | tr -s ' ')" = "NAME POD NAMESPACE NODE STATE AGE"
else
  fail "the objects users write apply: $(cat "$scratch/users")"
fi

if kubectl apply -n "$ns" -f "$here/testdata/pre-1.6-objects.yaml" >"$scratch/old" 2>&1; then
  fail "objects with pre-1.6 capitalised keys are rejected by kubectl"
else
  check "kubectl rejects a pre-1.6 AzureIdentity naming spec.ClientID" grep -q 'unknown field "spec.ClientID"' "$scratch/old"
  check "kubectl rejects a pre-1.6 binding naming spec.Selector" grep -q 'unknown field "spec.Selector"' "$scratch/old"
  check "kubectl rejects a pre-1.6 exception naming spec.PodLabels" grep -q 'unknown field "spec.PodLabels"' "$scratch/old"
fi
kubectl apply --validate=false -n "$ns" -f "$here/testdata/pre-1.6-objects.yaml" >/dev/null 2>&1
check "without validation the capitalised keys are pruned (as v1.8.17's v1 CRDs)" \
  test "$(kubectl get azureidentity old-identity -n "$ns" -o jsonpath='{.spec}')" = '{"type":0}'

# --- the README's Secret commands for service-principal identities ------------------------------
sp_ns="$(testenv_namespace secrets)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$scratch/sp.key" -out "$scratch/sp.crt" -subj /CN=demo-sp \
  -days 1 2>/dev/null && openssl pkcs12 -export -inkey "$scratch/sp.key" -in "$scratch/sp.crt" \
  -out "$scratch/demo-sp.pfx" -passout pass:pfx-password 2>/dev/null
check "README: kubectl create secret generic demo-sp-secret --from-literal=clientSecret=..." \
  quiet kubectl -n "$sp_ns" create secret generic demo-sp-secret --from-literal=clientSecret='<the secret>'
check "README: kubectl create secret generic demo-sp-cert --from-file=certificate=demo-sp.pfx --from-literal=password=..." \
  quiet kubectl -n "$sp_ns" create secret generic demo-sp-cert --from-file=certificate="$scratch/demo-sp.pfx" \
  --from-literal=password='<pfx password>'
keys="$(kubectl -n "$sp_ns" get secret demo-sp-cert -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')"
check "the certificate Secret has the keys NMI reads for type 2 ($keys)" test "$keys" = "certificate password "

# --- RBAC ------------------------------------------------------------------------------------------
NMI=system:serviceaccount:default:aad-pod-id-nmi-service-account
MIC=system:serviceaccount:default:aad-pod-id-mic-service-account
can() { # WHO yes|no VERB RESOURCE [-n NS | -A]
  local who=$1 want=$2 got
  shift 2
  got="$(kubectl auth can-i --as="$who" "$@" 2>/dev/null)"
  check "${who##*:} $([[ $want == yes ]] && echo can || echo cannot) $*" test "$got" = "$want"
}
aad=aadpodidentity.k8s.io
for v in get list watch; do
  can "$NMI" yes "$v" pods -A
  for r in azureidentities azureidentitybindings azurepodidentityexceptions azureassignedidentities; do
    can "$NMI" yes "$v" "$r.$aad" -A
  done
done
can "$NMI" yes get secrets -n kube-system
can "$NMI" no list secrets -A
can "$NMI" no watch secrets -n default
for v in create update patch delete; do
  can "$NMI" no "$v" azureassignedidentities.$aad -n default
  can "$NMI" no "$v" pods -n default
done
can "$NMI" no get nodes
can "$NMI" no update customresourcedefinitions.apiextensions.k8s.io
can "$NMI" no get configmaps -n default

for v in list watch; do
  can "$MIC" yes "$v" pods -A
  can "$MIC" yes "$v" nodes
  can "$MIC" yes "$v" azureidentities.$aad -A
  can "$MIC" yes "$v" azureidentitybindings.$aad -A
done
for v in get list watch create update patch delete; do can "$MIC" yes "$v" azureassignedidentities.$aad -A; done
can "$MIC" yes update azureidentities.$aad -n some-namespace
can "$MIC" yes list azurepodidentityexceptions.$aad -A
can "$MIC" yes create events -n some-namespace
for v in get create update; do
  can "$MIC" yes "$v" leases.coordination.k8s.io -n default
  can "$MIC" yes "$v" configmaps -n default
done
can "$MIC" no get leases.coordination.k8s.io -n kube-system
can "$MIC" no update configmaps -n kube-system
can "$MIC" no get secrets -n default
can "$MIC" no list secrets -A
can "$MIC" no delete azureidentities.$aad -n default
can "$MIC" no create azureidentitybindings.$aad -n default
can "$MIC" no delete pods -n default
can "$MIC" no update nodes
can "$MIC" no create customresourcedefinitions.apiextensions.k8s.io
can "$MIC" no get endpoints -n default

# The same with real tokens of exactly these ServiceAccounts (TokenRequest).
nmi_tok="$(testenv_token aad-pod-id-nmi-service-account default)"
mic_tok="$(testenv_token aad-pod-id-mic-service-account default)"
check "an NMI token reads the demo Secret" quiet kubectl --token="$nmi_tok" -n default get secret demo-sp-secret
out="$(kubectl --token="$nmi_tok" -n default get secrets 2>&1)"
check "an NMI token cannot list Secrets (Forbidden)" grep -q 'Forbidden' <<<"$out"
out="$(kubectl --token="$mic_tok" -n default get secret demo-sp-secret 2>&1)"
check "a MIC token cannot read a Secret (Forbidden)" grep -q 'Forbidden' <<<"$out"
check "a MIC token lists AzureIdentities of every namespace" quiet kubectl --token="$mic_tok" get azureidentities -A
check "a MIC token creates a Lease in its namespace" quiet kubectl --token="$mic_tok" -n default create -f - <<'YAML'
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: rbac-test-lease
spec:
  holderIdentity: test
YAML

finish
