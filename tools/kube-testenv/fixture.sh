# shellcheck shell=bash
# Bash library for script tests that need a real kube-apiserver.
#
#   source "$AAD_SOURCE_ROOT/tools/kube-testenv/fixture.sh"
#   testenv_start                     # once per suite; exports KUBECONFIG
#   ns=$(testenv_namespace mytest)    # fresh namespace per test
#   testenv_create_node node-1 azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1
#   testenv_create_pod "$ns" pod-1 node-1 app=demo aadpodidbinding=sel
#   testenv_set_pod_status "$ns" pod-1 Running 10.244.0.7
#   tok=$(testenv_token my-sa "$ns")  # TokenRequest
#   testenv_stop                      # also done by the EXIT trap set by testenv_start
#
# testenv_start reuses the control plane of a parent process when
# KUBECONFIG_TESTENV names a kubeconfig whose server answers /readyz; otherwise
# it starts tools/kube-testenv/start in the background and exports
# KUBECONFIG and KUBECONFIG_TESTENV (so child scripts reuse it).
# If kubectl is not on PATH (or KUBE_TESTENV_BUILD_KUBECTL=1), one is built from
# the same Go module and an exported shell function `kubectl` calling it is defined.
#
# Tunables: TESTENV_READY_TIMEOUT (seconds to wait for READY after the build,
# default 180), TESTENV_STOP_TIMEOUT (default 60).

TESTENV_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TESTENV_PID=""
TESTENV_WORK=""
TESTENV_KUBECTL="${TESTENV_KUBECTL:-}"

_testenv_log() { echo "testenv: $*" >&2; }

_testenv_resolve_kubectl() {
  if [[ -n $TESTENV_KUBECTL ]]; then
    return 0
  fi
  TESTENV_KUBECTL="$("$TESTENV_TOOLS_DIR/build" --kubectl)" || {
    _testenv_log "no kubectl and building one failed"
    return 1
  }
  if [[ "$(command -v kubectl 2>/dev/null)" != "$TESTENV_KUBECTL" ]]; then
    kubectl() { "$TESTENV_KUBECTL" "$@"; }
    export -f kubectl
    export TESTENV_KUBECTL
  fi
}

_testenv_kubectl() { "$TESTENV_KUBECTL" "$@"; }

_testenv_live() { # KUBECONFIG-PATH
  [[ -n ${1:-} && -f $1 ]] || return 1
  "$TESTENV_KUBECTL" --kubeconfig "$1" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# testenv_start [extra flags for tools/kube-testenv/start ...]
testenv_start() {
  _testenv_resolve_kubectl || return 1
  if [[ -n ${KUBECONFIG_TESTENV:-} ]] && _testenv_live "$KUBECONFIG_TESTENV"; then
    export KUBECONFIG="$KUBECONFIG_TESTENV"
    _testenv_log "reusing the control plane of $KUBECONFIG"
    return 0
  fi
  if [[ -n $TESTENV_PID ]]; then
    _testenv_log "already started (pid $TESTENV_PID)"
    return 0
  fi
  # Build first (may take long on a cold cache); the READY timeout starts after.
  "$TESTENV_TOOLS_DIR/build" >/dev/null || { _testenv_log "build failed"; return 1; }
  TESTENV_WORK="$(mktemp -d "${TMPDIR:-/tmp}/testenv-fixture.XXXXXX")"
  "$TESTENV_TOOLS_DIR/start" --watch-parent "$@" >"$TESTENV_WORK/stdout" 2>"$TESTENV_WORK/stderr" &
  TESTENV_PID=$!
  # Chain onto an EXIT trap the caller may already have set.
  local prev=""
  eval "set -- $(trap -p EXIT)"
  prev="${3:-}"
  if [[ $prev != *testenv_stop* ]]; then
    # shellcheck disable=SC2064 # the previous trap's command is meant to be expanded now
    trap "testenv_stop${prev:+; $prev}" EXIT
  fi
  trap 'exit 143' TERM
  trap 'exit 130' INT
  local deadline=$((SECONDS + ${TESTENV_READY_TIMEOUT:-180})) line=""
  while :; do
    line="$(grep -m1 '^READY ' "$TESTENV_WORK/stdout" 2>/dev/null || true)"
    [[ -n $line ]] && break
    if ! kill -0 "$TESTENV_PID" 2>/dev/null; then
      _testenv_log "kube-testenv exited before READY; its stderr:"
      tail -n 40 "$TESTENV_WORK/stderr" >&2
      TESTENV_PID=""
      return 1
    fi
    if ((SECONDS >= deadline)); then
      _testenv_log "no READY after ${TESTENV_READY_TIMEOUT:-180}s; its stderr:"
      tail -n 40 "$TESTENV_WORK/stderr" >&2
      testenv_stop
      return 1
    fi
    sleep 0.2
  done
  export KUBECONFIG="${line#READY }"
  export KUBECONFIG_TESTENV="$KUBECONFIG"
  _testenv_log "started (pid $TESTENV_PID), KUBECONFIG=$KUBECONFIG"
}

# testenv_stop: SIGTERM the instance started by testenv_start, wait, clean up.
testenv_stop() {
  if [[ -n $TESTENV_PID ]]; then
    local pid=$TESTENV_PID i
    TESTENV_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${TESTENV_STOP_TIMEOUT:-60} * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      _testenv_log "pid $pid did not stop; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    if [[ ${KUBECONFIG_TESTENV:-} == "${KUBECONFIG:-}" ]]; then
      unset KUBECONFIG_TESTENV
    fi
  fi
  if [[ -n $TESTENV_WORK ]]; then
    rm -rf "$TESTENV_WORK"
    TESTENV_WORK=""
  fi
}

# testenv_namespace [PREFIX]: creates a fresh namespace and prints its name.
testenv_namespace() {
  local prefix="${1:-test}" name
  prefix="$(printf '%s' "$prefix" | tr 'A-Z_.' 'a-z--' | tr -cd 'a-z0-9-' | cut -c1-40)"
  name="${prefix:-test}-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
  _testenv_kubectl create namespace "$name" >/dev/null || return 1
  echo "$name"
}

# testenv_create_node NAME PROVIDERID
testenv_create_node() {
  local name=$1 provider=$2
  _testenv_kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $name
  labels:
    kubernetes.io/hostname: $name
spec:
  providerID: "$provider"
EOF
}

# testenv_create_pod NS NAME NODE [KEY=VALUE labels...]
# A Pod bound to NODE through spec.nodeName (no scheduler runs), hostNetwork false.
testenv_create_pod() {
  local ns=$1 name=$2 node=$3 labels="" kv
  shift 3
  for kv in "$@"; do
    labels+="${labels:+, }\"${kv%%=*}\": \"${kv#*=}\""
  done
  _testenv_kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: $ns
  labels: {$labels}
spec:
  nodeName: $node
  hostNetwork: false
  automountServiceAccountToken: false
  containers:
  - name: app
    image: registry.k8s.io/pause:3.10
EOF
}

# testenv_set_pod_status NS NAME PHASE IP [IP2...]
# Sets status.phase, status.podIP and status.podIPs through the status subresource.
testenv_set_pod_status() {
  local ns=$1 name=$2 phase=$3 ips="" ip
  shift 3
  (($# >= 1)) || { _testenv_log "testenv_set_pod_status: need at least one IP"; return 2; }
  for ip in "$@"; do
    ips+="${ips:+,}{\"ip\":\"$ip\"}"
  done
  _testenv_kubectl -n "$ns" patch pod "$name" --subresource=status --type=merge \
    -p "{\"status\":{\"phase\":\"$phase\",\"podIP\":\"$1\",\"podIPs\":[$ips]}}" >/dev/null
}

# testenv_token SA NS [extra `kubectl create token` flags, e.g. --duration=10m]
# Prints a ServiceAccount token obtained through the TokenRequest API.
testenv_token() {
  local sa=$1 ns=$2
  shift 2
  _testenv_kubectl -n "$ns" create token "$sa" "$@"
}
