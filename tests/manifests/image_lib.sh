# shellcheck shell=bash
# Sourced by the image tests (image_test.sh, nmi_image_test.sh): rootful buildah with chroot
# isolation (no registry is reachable here), the release binary the Dockerfile copies, and a
# local Debian 12 base image for the `nmi` target.
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot  # vfs only for a new store; an existing one keeps its driver

# release_binary ROOT: builds ROOT/build-release/app/aad-pod-identity as README and tools/quickstart do.
release_binary() {
  local dir="$1/build-release"
  [[ -f $dir/build.ninja ]] || meson setup "$dir" "$1" --buildtype=release >/dev/null || return 1
  ninja -C "$dir" app/aad-pod-identity >/dev/null
}

# debian_base_image: prints the name of a local Debian 12 image standing in for
# debian:bookworm-slim, made once with mmdebstrap (minbase, merged /usr, no docs, man pages or
# locales: what the slim image leaves out) from this machine's apt sources, which the image keeps,
# so `apt-get install` in the Dockerfile uses the same mirror. Reused while those sources and
# this recipe are unchanged (the tag carries their hash); an older base is removed when a new one
# is made. Delete it (`buildah rmi localhost/aad-debian-base:...`) to take newer packages.
# Serialised with a lock: worktrees share the buildah store. Progress and timing go to stderr.
debian_base_image() {
  local sources=/etc/apt/sources.list.d/debian.sources
  [[ -f $sources ]] || { echo "debian_base_image: $sources is missing" >&2; return 1; }
  local opts=(--variant=minbase --mode=root --format=directory --skip=check/empty
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias')
  local key
  key=$( (dpkg --print-architecture; cat "$sources"; printf '%s\n' "${opts[@]}") | sha256sum | cut -c1-12)
  local repo=localhost/aad-debian-base name="localhost/aad-debian-base:bookworm-$key"
  (
    flock 9
    if buildah inspect --type image "$name" >/dev/null 2>&1; then
      echo "debian base: reusing $name" >&2
      exit 0
    fi
    local start=$SECONDS c m log rc=0
    log=$(mktemp)
    c=$(buildah from scratch) && m=$(buildah mount "$c") || exit 1
    mmdebstrap "${opts[@]}" bookworm "$m" - <"$sources" >"$log" 2>&1 || rc=$?
    buildah umount "$c" >/dev/null
    ((rc == 0)) && buildah commit -q --rm "$c" "$name" >/dev/null || rc=1
    if ((rc)); then
      echo "debian_base_image: mmdebstrap or commit failed:" >&2
      tail -n 20 "$log" >&2
      buildah rm "$c" >/dev/null 2>&1
    else
      local old
      for old in $(buildah images --format '{{.Name}}:{{.Tag}}' --filter reference="$repo" 2>/dev/null); do
        [[ $old == "$name" ]] || buildah rmi "$old" >/dev/null 2>&1
      done
      echo "debian base: made $name in $((SECONDS - start)) s" >&2
    fi
    rm -f "$log"
    exit "$rc"
  ) 9>/run/lock/aad-debian-base.lock || return 1
  echo "$name"
}
