#!/usr/bin/env bash
# The Dockerfile's `mic` image, built with buildah (image_lib.sh; no registry is reachable here,
# so the CA certificates come from a local image made from this machine's files through
# CERTS_IMAGE). The image holds the static release binary, which runs in it, as user 65532 with
# the MIC entrypoint. The `nmi` image: nmi_image_test.sh.
# Exit 0 = pass, 77 = skipped (not root or no buildah).
set -uo pipefail
root="${AAD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: buildah here needs root"; exit 77; }
command -v buildah >/dev/null || { echo "SKIP: buildah is not installed (tools/test installs it)"; exit 77; }
# shellcheck source=image_lib.sh
source "$root/tests/manifests/image_lib.sh"
# shellcheck source=../support/checks.sh
source "$root/tests/support/checks.sh"

tag="localhost/aad-pod-identity-mic:test-$$" certs="localhost/aad-test-certs-$$"
ctr=""
cleanup() { # our container, the stage container buildah keeps for the certs image, both images
  local c
  for c in $ctr $(buildah containers -q --filter ancestor="$certs" 2>/dev/null); do buildah rm "$c" >/dev/null 2>&1; done
  buildah rmi "$tag" "$certs" >/dev/null 2>&1
}
trap cleanup EXIT

release_binary "$root" || { fail "release build"; finish; }

c=$(buildah from scratch) && buildah copy "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null &&
  buildah copy "$c" /etc/nsswitch.conf /etc/nsswitch.conf >/dev/null && buildah commit -q "$c" "$certs" >/dev/null
buildah rm "$c" >/dev/null 2>&1
if buildah build -q --target mic --build-arg CERTS_IMAGE="$certs" -t "$tag" "$root" >/tmp/image-build-$$.log 2>&1; then
  ok "buildah build --target mic"
else
  fail "buildah build --target mic: $(tail -n 20 /tmp/image-build-$$.log)"
fi
rm -f /tmp/image-build-$$.log
cfg=$(buildah inspect --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}' "$tag" 2>&1)
[[ $cfg == "65532:65532 [/aad-pod-identity --role=mic]" ]] && ok "non-root user and MIC entrypoint ($cfg)" || fail "config: $cfg"
ctr=$(buildah from "$tag")
files=$(m=$(buildah mount "$ctr") && (cd "$m" && find . -type f | sort | tr '\n' ' '); buildah umount "$ctr" >/dev/null)
[[ $files == *"./aad-pod-identity "* && $files == *"./etc/ssl/certs/ca-certificates.crt "* ]] &&
  ok "image holds the binary and the CA bundle ($files)" || fail "image files: $files"
out=$(buildah run "$ctr" -- /aad-pod-identity --role=mic --version 2>&1)
[[ $out == "aad-pod-identity "* ]] && ok "the binary runs inside the image: $out" || fail "run in image: $out"
out=$(buildah run "$ctr" -- /aad-pod-identity --role=mic --bogus 2>&1; echo "status=$?")
[[ $out == *"unknown flag --bogus"*"status=2" ]] && ok "flag errors inside the image as outside" || fail "$out"
cleanup
left=$(buildah images -q --filter reference="$certs" 2>/dev/null; buildah images -q --filter reference="$tag" 2>/dev/null)
[[ -z $left ]] && ok "no image or container left behind" || fail "left behind: $left"
finish
