#!/usr/bin/env bash
# The binary's command line: exit codes, one-line errors, --version, --help, and a role that
# serves its probes and drains on SIGTERM.
set -u
bin=$1
fails=0
check() {  # check NAME EXPECTED_STATUS EXPECTED_STDERR_SUBSTRING -- ARGS...
  local name=$1 want=$2 text=$3; shift 4
  local err out status
  err=$(mktemp); out=$("$bin" "$@" 2>"$err"); status=$?
  if [[ $status -ne $want ]] || ! grep -qF -- "$text" <(cat "$err"; echo "$out"); then
    echo "FAIL $name: status $status (want $want), output: $out $(cat "$err")"; fails=$((fails+1))
  else
    echo "ok   $name"
  fi
  if [[ $want -eq 2 && $(wc -l <"$err") -ne 1 ]]; then echo "FAIL $name: error is not one line"; fails=$((fails+1)); fi
  rm -f "$err"
}
export MIC_POD_NAMESPACE=kube-system
check version 0 "aad-pod-identity 0." -- --version
check role-version 0 "commit" -- --role=nmi --version
check help 0 "--nmi-port value" -- --help
check mic-help 0 "--syncRetryDuration value" -- --role mic --help
check no-role 2 "missing flag --role" --
check bad-role 2 'invalid value "foo" for flag --role' -- --role=foo
check bad-port 2 'invalid value "abc" for flag --nmi-port: not an integer' -- --role=nmi --nmi-port=abc
check bad-interval 2 'for flag --ipt-update-interval-sec: must be at least 1' -- --role=nmi --ipt-update-interval-sec=-1
check unknown-flag 2 'unknown flag --bogus' -- --role=mic --bogus
check bad-bool 2 'for flag --forceNamespaced: not a boolean' -- --role=mic --forceNamespaced=maybe
check stray-arg 2 'unexpected argument "extra"' -- --role=nmi extra
check role-twice 2 'flag --role given more than once' -- --role=nmi --role=nmi
check role-empty 2 'flag --role needs a value' -- --role=
check version-1 0 "aad-pod-identity 0." -- --version=1
check unknown-before-version 2 'unknown flag --bogus' -- --bogus --version
check newline-value 2 'invalid value "1\n2" for flag --nmi-port' -- --role=nmi --nmi-port=$'1\n2'
check bad-ip 2 'for flag --metadata-ip: not an IP address' -- --role=nmi --metadata-ip=nope
MIC_POD_NAMESPACE= check mic-needs-namespace 2 "MIC_POD_NAMESPACE must be set" -- --role=mic
FORCENAMESPACED=perhaps check bad-env 2 'environment variable FORCENAMESPACED' -- --role=nmi

# A role process: probes answer, readiness stays failed while its caches cannot sync (the
# apiserver in this kubeconfig does not exist), SIGTERM drains.
probe=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nmiport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
kubeconfig=$(mktemp)
cat >"$kubeconfig" <<'KC'
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: "x"}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
KC
"$bin" --role=nmi --http-probe-port="$probe" --prometheus-port="$metrics" --log-format=json \
  --node=cli-test-node --allow-network-plugin-kubenet --kubeconfig="$kubeconfig" --nmi-port="$nmiport" 2>"$log" &
pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$probe/healthz" >/dev/null && break; sleep 0.1; done
health=$(curl -s "http://127.0.0.1:$probe/healthz")
ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$probe/readyz")
metric=$(curl -s "http://127.0.0.1:$metrics/metrics" | grep -c '^aadpodidentity_build_info{')
pprof=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$probe/debug/pprof/")
kill -TERM $pid; wait $pid; status=$?
[[ $health == "Not Active" ]] && echo "ok   healthz" || { echo "FAIL healthz: $health"; fails=$((fails+1)); }
[[ $ready == 503 ]] && echo "ok   readyz" || { echo "FAIL readyz: $ready"; fails=$((fails+1)); }
[[ $metric == 1 ]] && echo "ok   metrics" || { echo "FAIL metrics: $metric"; fails=$((fails+1)); }
[[ $pprof == 404 ]] && echo "ok   no-pprof" || { echo "FAIL pprof: $pprof"; fails=$((fails+1)); }
[[ $status == 0 ]] && echo "ok   sigterm" || { echo "FAIL sigterm exit $status"; fails=$((fails+1)); }
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$log" && echo "ok   json-logs" \
  || { echo "FAIL json logs"; cat "$log"; fails=$((fails+1)); }
rm -f "$log" "$kubeconfig"
exit $((fails > 0))
