#!/usr/bin/env bash
# The nmi image's tools/image/iptables-wrapper, installed exactly as the Dockerfile does
# (`iptables-wrapper --install`), with the real update-alternatives, iptables-legacy and
# iptables-nft. Each case runs in a throwaway network namespace and a private mount namespace
# where /usr/sbin, /etc/alternatives and /var/lib/dpkg/alternatives are overlays over the host's
# (writes go to a temporary directory) and /run is a fresh tmpfs: the host's rules and
# alternatives are never touched (the alternatives are checked at the end).
# Usage: iptables_wrapper_test.sh WRAPPER NMI_REDIRECT_TESTS.  Exit 0 pass, 77 skipped.
set -uo pipefail
wrapper=$(realpath "$1") redirect_tests=$(realpath "$2")

if [[ ${3:-} == inside ]]; then
  # One case, already inside `unshare --net --mount`. $4 = case name, $5 = scratch directory.
  name=$4 tmp=$5
  mount --make-rprivate / || exit 1
  for d in /usr/sbin /etc/alternatives /var/lib/dpkg/alternatives; do
    u="$tmp/$(echo "$d" | tr / _)"
    mkdir -p "$u/up" "$u/work"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$u/up,workdir=$u/work" "$d" || exit 1
  done
  mount -t tmpfs tmpfs /run || exit 1
  ip link set lo up
  cp "$wrapper" /usr/sbin/iptables-wrapper && /usr/sbin/iptables-wrapper --install || { echo "FAIL - --install"; exit 1; }
  [[ $(readlink -f /usr/sbin/iptables-save) == /usr/sbin/iptables-wrapper ]] || { echo "FAIL - not installed"; exit 1; }

  seed_rules() { # $1 = backend, $2 = how many filter rules
    local i
    for ((i = 0; i < $2; i++)); do "iptables-$1" -w -A INPUT -s "10.9.0.$i" -j ACCEPT || return 1; done
  }
  # What is on the node before NMI starts, and the backend the wrapper must pick.
  case $name in
    legacy-rules) seed_rules legacy 3 && expect=legacy ;;
    nft-rules) seed_rules nft 3 && expect=nft ;;
    no-rules) expect=nft ;;  # as iptables-wrappers: a tie means nft, Debian's default
    # kubelet's hint outweighs rule counts (here: more legacy rules, kubelet on nft).
    kubelet-nft) seed_rules legacy 5 && iptables-nft -w -t mangle -N KUBE-IPTABLES-HINT && expect=nft ;;
    kubelet-legacy) seed_rules nft 5 && ip6tables-legacy -w -N KUBE-KUBELET-CANARY && expect=legacy ;;
    concurrent) seed_rules legacy 2 && expect=legacy ;;
    # Alternatives not writable: every call detects and runs the backend directly.
    read-only) seed_rules legacy 2 && mount -o remount,ro /etc/alternatives && expect=legacy ;;
  esac
  [[ -n ${expect:-} ]] || { echo "FAIL - $name: unknown case, or seeding its rules failed"; exit 1; }

  label=$([[ $expect == legacy ]] && echo legacy || echo nf_tables)  # as `iptables --version` says
  failed=0
  check() { if eval "$2"; then echo "ok   - $name: $1"; else echo "FAIL - $name: $1"; failed=1; fi; }
  if [[ $name == concurrent ]]; then
    # Twelve first calls at once through four of the names; each must succeed and agree.
    pids=()
    for i in $(seq 12); do
      case $((i % 4)) in
        0) iptables -w -t filter -S INPUT >"$tmp/out.$i" 2>&1 & ;;
        1) iptables-save >"$tmp/out.$i" 2>&1 & ;;
        2) ip6tables -w -S >"$tmp/out.$i" 2>&1 & ;;
        3) iptables --version >"$tmp/out.$i" 2>&1 & ;;
      esac
      pids+=($!)
    done
    bad=0
    for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
    check "12 concurrent first calls all succeed" '((bad == 0))'
    check "every call ran the legacy backend" \
      '! grep -q "nf_tables\|iptables-wrapper" "$tmp"/out.* && grep -q "10.9.0.1" "$tmp/out.4" &&
       grep -q "10.9.0.1" "$tmp/out.1" && grep -q "(legacy)" "$tmp/out.3"'
    check "no update-alternatives leftovers" \
      '! ls /etc/alternatives /var/lib/dpkg/alternatives | grep -q "dpkg-\|\.tmp"'
  else
    # NMI's real redirector: its start-up log and where its chain lands.
    AAD_EXPECT_IPTABLES_BACKEND=$expect "$redirect_tests" "[wrapper]" >"$tmp/nmi.log" 2>&1
    rc=$?
    check "NMI's chain lands in iptables-$expect-save only (and is removed there)" '((rc == 0))'
    ((rc == 0)) || cat "$tmp/nmi.log"
    check "NMI logs the backend: $(grep -o '"iptables backend".*' "$tmp/nmi.log" | head -1)" \
      'grep "iptables backend" "$tmp/nmi.log" | grep -q "($label)"'
  fi
  if [[ $name == read-only ]]; then
    check "the alternatives still point at the wrapper" '[[ $(readlink -f /usr/sbin/iptables) == /usr/sbin/iptables-wrapper ]]'
    check "the wrapper says why, and runs legacy" '[[ $(iptables --version 2>&1) == *"cannot switch the iptables alternatives to legacy"*"(legacy)"* ]]'
    exit "$failed"
  fi
  check "iptables and ip6tables alternatives point at $expect, -save/-restore follow" \
    '[[ $(readlink -f /usr/sbin/iptables) == /usr/sbin/xtables-$expect-multi &&
        $(readlink /etc/alternatives/iptables) == /usr/sbin/iptables-$expect &&
        $(readlink /etc/alternatives/iptables-restore) == /usr/sbin/iptables-$expect-restore &&
        $(readlink /etc/alternatives/ip6tables-save) == /usr/sbin/ip6tables-$expect-save ]]'
  # Idempotent: later calls bypass the wrapper and change nothing.
  before=$(ls -l /etc/alternatives/ | grep tables)
  iptables -w -t nat -S >/dev/null 2>&1 && iptables-save >/dev/null 2>&1 && ip6tables --version >/dev/null
  check "later calls change nothing" '[[ $(ls -l /etc/alternatives/ | grep tables) == "$before" ]]'
  # Called directly again (an image whose alternatives were reset): follows the choice.
  check "the wrapper called as iptables after the choice follows it" \
    '[[ $(cd "$tmp" && ln -sf /usr/sbin/iptables-wrapper iptables && ./iptables --version) == *"($label)"* ]]'
  exit "$failed"
fi

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (network and mount namespaces)"; exit 77; }
for c in unshare iptables-legacy iptables-nft update-alternatives; do
  command -v "$c" >/dev/null || { echo "SKIP: $c is not installed (apt package iptables)"; exit 77; }
done
host_alternatives=$(ls -l /etc/alternatives/ | grep tables; md5sum /var/lib/dpkg/alternatives/*tables*)

# The test binary's guard: it must not be in this (the host's) network namespace.
AAD_HOST_NETNS_INODE=$(stat -L -c %i /proc/self/ns/net)
export AAD_HOST_NETNS_INODE
failed=0
for name in legacy-rules nft-rules no-rules kubelet-nft kubelet-legacy concurrent read-only; do
  tmp=$(mktemp -d)
  unshare --net --mount bash "$0" "$1" "$2" inside "$name" "$tmp" || failed=1
  rm -rf "$tmp"
done
if [[ $(ls -l /etc/alternatives/ | grep tables; md5sum /var/lib/dpkg/alternatives/*tables*) == "$host_alternatives" ]]; then
  echo "ok   - the host's iptables alternatives are unchanged"
else
  echo "FAIL - the host's iptables alternatives changed"; failed=1
fi
exit "$failed"
