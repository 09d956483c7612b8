#!/usr/bin/env bash
# The Dockerfile's `nmi` image, built with buildah on a local Debian 12 base (image_lib.sh; no
# registry is reachable here), its `apt-get install` going to this machine's apt mirror. Checked:
# NMI entrypoint, the binary runs in the image, `iptables` (and -save/-restore, ip6tables) is the
# iptables-wrapper, no apt lists or package caches (size printed). Then NMI runs from the image's
# root file system (chroot) in a throwaway network and mount namespace, with its own
# kube-apiserver, on a "node" whose rules are in the legacy backend: the wrapper picks legacy,
# NMI's aad-metadata chain lands there only, and NMI removes it on SIGTERM. The host's iptables
# are never touched. Everything made here is removed (the base image is kept as a cache).
# Exit 0 = pass, 77 = skipped (not root, or buildah/mmdebstrap/unshare missing).
set -uo pipefail
root="${AAD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# shellcheck source=../support/checks.sh
source "$root/tests/support/checks.sh"

if [[ ${1:-} == inside ]]; then
  # In `unshare --net --mount`. $2 = the image's mounted root, $3 = scratch directory.
  mnt=$2 tmp=$3 node=image-node
  mount --make-rprivate / && ip link set lo up || { fail "namespace set-up"; finish; }
  nmi=""
  trap '[[ -n $nmi ]] && kill -KILL "$nmi" 2>/dev/null' EXIT  # testenv_start chains its own onto it
  unset KUBECONFIG_TESTENV  # a parent's apiserver is in the host's namespace: start one here
  # shellcheck source=../../tools/kube-testenv/fixture.sh
  source "$root/tools/kube-testenv/fixture.sh"
  start=$SECONDS
  testenv_start >"$tmp/testenv.log" 2>&1 || { fail "kube-testenv in the namespace: $(tail -n 20 "$tmp/testenv.log")"; finish; }
  kubectl apply -f "$root/tests/kube/testdata/crds.yaml" >/dev/null &&
    kubectl wait --for condition=established --timeout=60s crd --all >/dev/null || { fail "CRDs"; finish; }
  # The image's root as a pod would see it: the kernel's file systems, a fresh /run and /tmp.
  mount -t proc proc "$mnt/proc" && mount -t sysfs sysfs "$mnt/sys" && mount --rbind /dev "$mnt/dev" &&
    mount -t tmpfs tmpfs "$mnt/run" && mount -t tmpfs tmpfs "$mnt/tmp" || { fail "mounts in the image's root"; finish; }
  echo "# kube-apiserver in the namespace: $((SECONDS - start)) s"
  cp "$KUBECONFIG" "$mnt/tmp/kubeconfig" && echo "KUBELET_FLAGS=--network-plugin=cni" >"$mnt/tmp/kubelet"
  in_image() { chroot "$mnt" "$@"; }

  # The node's rules are in the legacy backend (not Debian's default, nft): the wrapper must see it.
  in_image iptables-legacy -w -A INPUT -s 10.9.0.1 -j ACCEPT || { fail "seeding a legacy rule"; finish; }
  chroot "$mnt" /usr/local/bin/aad-pod-identity --role=nmi --node="$node" --kubeconfig=/tmp/kubeconfig \
    --kubelet-config=/tmp/kubelet --ipt-update-interval-sec=1 >"$tmp/nmi.log" 2>&1 &
  nmi=$!
  chain() { in_image "iptables-$1-save" -t nat 2>/dev/null | grep -c -- 'aad-metadata'; }
  for ((i = 0; i < 120; i++)); do
    (($(chain legacy) >= 3)) && break
    kill -0 "$nmi" 2>/dev/null || break
    sleep 0.5
  done
  legacy=$(in_image iptables-legacy-save -t nat 2>&1)
  if [[ $legacy == *":aad-metadata "* && $legacy == *"-A PREROUTING -j aad-metadata"* ]]; then
    ok "NMI from the image installs its aad-metadata chain and jump in iptables-legacy: $(grep -- '-A aad-metadata' <<<"$legacy" | head -1)"
  else
    fail "no aad-metadata chain in iptables-legacy-save: $legacy; NMI log: $(tail -n 30 "$tmp/nmi.log")"
  fi
  check "nothing of NMI's in iptables-nft" test "$(chain nft)" = 0
  pick=$(readlink "$mnt/etc/alternatives/iptables")
  check "the wrapper pointed the image's iptables alternative at legacy ($pick)" test "$pick" = /usr/sbin/iptables-legacy
  backend=$(grep -o '"iptables backend".*' "$tmp/nmi.log" | head -1)
  check "NMI logs the backend: $backend" grep -q '"iptables backend".*(legacy)' "$tmp/nmi.log"
  kill -TERM "$nmi" 2>/dev/null
  for ((i = 0; i < 60; i++)); do kill -0 "$nmi" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$nmi" 2>/dev/null  # only if it hung: the check below then fails
  wait "$nmi"
  rc=$? nmi=""
  check "NMI stops on SIGTERM (status $rc)" test "$rc" = 0
  check "and removes its chain" test "$(chain legacy)" = 0
  testenv_stop >/dev/null 2>&1
  finish
fi

[[ $(id -u) -eq 0 ]] || { echo "SKIP: buildah here needs root"; exit 77; }
for c in buildah mmdebstrap unshare; do
  command -v "$c" >/dev/null || { echo "SKIP: $c is not installed (tools/test installs it)"; exit 77; }
done
# shellcheck source=image_lib.sh
source "$root/tests/manifests/image_lib.sh"

tag="localhost/aad-pod-identity-nmi:test-$$"
ctr="" mnt="" tmp=$(mktemp -d)
cleanup() {
  [[ -n $ctr ]] && { buildah umount "$ctr" >/dev/null 2>&1; buildah rm "$ctr" >/dev/null 2>&1; }
  buildah rmi "$tag" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

release_binary "$root" || { fail "release build"; finish; }
start=$SECONDS
base=$(debian_base_image) || { fail "local Debian 12 base image (mmdebstrap)"; finish; }
echo "# base image $base: $((SECONDS - start)) s"
start=$SECONDS
if buildah build -q --target nmi --build-arg DEBIAN_IMAGE="$base" -t "$tag" "$root" >"$tmp/build.log" 2>&1; then
  ok "buildah build --target nmi on $base ($((SECONDS - start)) s)"
else
  fail "buildah build --target nmi: $(tail -n 20 "$tmp/build.log")"
  finish
fi
cfg=$(buildah inspect --format '{{.OCIv1.Config.Entrypoint}}' "$tag" 2>&1)
check "NMI entrypoint ($cfg)" test "$cfg" = "[/usr/local/bin/aad-pod-identity --role=nmi]"
ctr=$(buildah from "$tag") && mnt=$(buildah mount "$ctr") || { fail "container from the image"; finish; }
out=$(buildah run "$ctr" -- /usr/local/bin/aad-pod-identity --role=nmi --version 2>&1)
[[ $out == "aad-pod-identity "* ]] && ok "the binary runs inside the image: $out" || fail "run in image: $out"
links=$(for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  chroot "$mnt" readlink -f "/usr/sbin/$n"; done | sort -u)
check "iptables, ip6tables and their -save/-restore are the wrapper ($links)" test "$links" = /usr/sbin/iptables-wrapper
tools_run() { chroot "$mnt" sh -c 'iptables-legacy --version && iptables-nft --version && conntrack --version' >/dev/null 2>&1; }
check "iptables-legacy, iptables-nft and conntrack run in the image" tools_run
left=$(cd "$mnt" && find var/lib/apt/lists var/cache/apt -type f ! -name lock 2>/dev/null | head -5)
check "no apt lists or package caches in the image${left:+: $left}" test -z "$left"
size=$(buildah images --format '{{.Size}}' "$tag")
echo "# image size: $size (base $(buildah images --format '{{.Size}}' "$base"))"

unshare --net --mount bash "$0" inside "$mnt" "$tmp" || failed=$((failed + 1))

cleanup
ctr_left=$(buildah containers -q --filter ancestor="$tag" 2>/dev/null; buildah containers -q --filter ancestor="$base" 2>/dev/null)
img_left=$(buildah images -q --filter reference="$tag" 2>/dev/null)
mnt_left=$(grep -cF -- "${mnt:-/nonexistent}" /proc/self/mountinfo)
check "no container, image or mount left behind (containers: ${ctr_left:-none}, images: ${img_left:-none}, mounts: $mnt_left)" \
  test -z "$ctr_left$img_left" -a "$mnt_left" = 0
finish
