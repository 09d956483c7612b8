# Sourced by tools/test and tools/quickstart: installs what a fresh Debian 12 machine lacks.
# Idempotent; apt-get update runs only when a package must be installed.

AAD_ROOT="${AAD_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
AAD_CACHE="${AAD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aad-pod-identity}"
mkdir -p "$AAD_CACHE"

aad_step() { printf '==> %s\n' "$*" >&2; }

AAD_APT_PACKAGES=(
  g++ meson ninja-build pkg-config ccache git curl ca-certificates file
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libyaml-cpp-dev libfmt-dev libssl-dev catch2
  iptables iproute2 conntrack python3 python3-venv nodejs npm
)

ensure_apt_packages() {
  local missing=() p
  for p in "${AAD_APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Node and npm may come from elsewhere (the machine image); only the commands matter.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    local keep=()
    for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || keep+=("$p"); done
    missing=("${keep[@]}")
  fi
  ((${#missing[@]} == 0)) && return 0
  aad_step "installing Debian packages: ${missing[*]}"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_go() {
  local go=""
  if command -v go >/dev/null; then go=$(command -v go); elif [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go; fi
  if [[ -z $go ]]; then
    echo "tools: Go >= 1.24 is needed to build the test kube-apiserver and was not found" >&2
    return 1
  fi
  local v; v=$("$go" env GOVERSION | sed 's/^go//')
  if [[ $(printf '%s\n1.24\n' "$v" | sort -V | head -n1) != 1.24 ]]; then
    echo "tools: Go $v is too old; kube-apiserver 1.34 needs Go >= 1.24" >&2
    return 1
  fi
  export PATH="$(dirname "$go"):$PATH" GOTOOLCHAIN=local
}

# A virtualenv with the Python test packages, keyed by the requirement files and the interpreter.
ensure_python_env() {
  local key; key=$( (python3 --version; cat "$AAD_ROOT/tests/sdk/requirements.txt" "$AAD_ROOT/tools/azure-emulator/requirements.txt") | sha256sum | cut -c1-12)
  local venv="$AAD_CACHE/venv-$key"
  if [[ ! -x $venv/bin/python || ! -f $venv/.complete ]]; then
    aad_step "creating Python environment $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    (cd "$AAD_ROOT/tests/sdk" && "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt >&2)
    touch "$venv/.complete"
  fi
  export AAD_PYTHON="$venv/bin/python" EMULATOR_SDK_PYTHON="$venv/bin/python"
}

# node_modules with the JavaScript SDKs, keyed by package.json.
ensure_node_sdks() {
  local key; key=$( (node --version; cat "$AAD_ROOT/tests/sdk/package.json") | sha256sum | cut -c1-12)
  local dir="$AAD_CACHE/node-sdk-$key"
  if [[ ! -f $dir/.complete ]]; then
    aad_step "installing JavaScript SDKs into $dir"
    rm -rf "$dir"; mkdir -p "$dir"
    cp "$AAD_ROOT/tests/sdk/package.json" "$dir/"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
    touch "$dir/.complete"
  fi
  export EMULATOR_SDK_NODE_PATH="$dir/node_modules" AAD_NODE_PATH="$dir/node_modules"
}

# The Azure CLI in its own virtualenv (it pins many packages of its own), keyed by its pinned version.
ensure_azure_cli() {
  local req="$AAD_ROOT/tests/e2e/azure-cli-requirements.txt"
  local key; key=$( (python3 --version; cat "$req") | sha256sum | cut -c1-12)
  local venv="$AAD_CACHE/azure-cli-$(sed -n 's/^azure-cli==//p' "$req")-$key"
  if [[ ! -x $venv/bin/az || ! -f $venv/.complete ]]; then
    aad_step "installing the Azure CLI into $venv (once; a few minutes)"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
  fi
  export AAD_AZ="$venv/bin/az"
}

# The sanitizer test build in build/: configured once (and kept a sanitizer build).
configure_test_build() {
  local dir="$AAD_ROOT/build"
  local opts=(--buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false)
  if [[ ! -f $dir/build.ninja ]]; then
    aad_step "configuring $dir (AddressSanitizer + UBSan)"
    meson setup "$dir" "$AAD_ROOT" "${opts[@]}" >&2
  elif [[ $(meson introspect --buildoptions "$dir" | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "b_sanitize"))') != address,undefined ]]; then
    aad_step "reconfiguring $dir for the sanitizers"
    meson configure "$dir" "${opts[@]}" >&2
  fi
}

build_test_build() {
  aad_step "building"
  ninja -C "$AAD_ROOT/build" >&2
}
