#!/usr/bin/env bash
# The release build as a user makes it (`meson setup DIR --buildtype=release`, no other options):
# compiles without a compiler warning, links fully static, stays within 12 MB stripped, and runs.
set -euo pipefail
root=${AAD_SOURCE_ROOT:?}
dir=${AAD_RELEASE_BUILD_DIR:-$root/build-static-check}  # its own, apart from a hand-made build-release
log=$(mktemp)
trap 'rm -f "$log"' EXIT
[[ -f $dir/build.ninja ]] || meson setup "$dir" "$root" --buildtype=release >"$log" 2>&1 || { cat "$log"; exit 1; }
# A clean rebuild of our own objects, so every compiler warning shows up in this log.
ninja -C "$dir" -t clean >/dev/null
# The binary and every library (kube and azure are not linked into it yet, but must compile clean).
ninja -C "$dir" app/aad-pod-identity lib/core/libaadcore.a lib/kube/libaadkube.a lib/azure/libaadazure.a \
  lib/identity/libaadidentity.a >"$log" 2>&1 || { cat "$log"; exit 1; }
bin=$dir/app/aad-pod-identity
fails=0
# glibc's linker notes about getaddrinfo/gethostbyname in static binaries are expected: the
# lookups work with the same glibc (files and dns); see "Building by hand" in the README.
warnings=$(grep -E 'warning:' "$log" | grep -vE 'in statically linked applications requires at runtime' || true)
if [[ -n $warnings ]]; then
  echo "FAIL compiler warnings (with the lines that locate them):"
  grep -E 'warning:|In (member )?function|inlined from|^\[[0-9]+/[0-9]+\]' "$log" | grep -v 'statically linked applications'
  fails=1
else
  echo "ok   no compiler warnings"
fi
desc=$(file -b "$bin")
if [[ $desc == *"statically linked"* && $desc == *stripped* && $desc != *"not stripped"* ]]; then
  echo "ok   static and stripped: $desc"
else
  echo "FAIL not static/stripped: $desc"; fails=1
fi
size=$(stat -c %s "$bin")
if ((size <= 12 * 1024 * 1024)); then echo "ok   size $size bytes"; else echo "FAIL size $size bytes > 12 MB"; fails=1; fi
if "$bin" --version | grep -q '^aad-pod-identity [0-9]'; then echo "ok   runs"; else echo "FAIL --version"; fails=1; fi
exit $fails
