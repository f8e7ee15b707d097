#!/usr/bin/env bash
# Installs what this machine lacks to build, run and test Angzarr Mesh, and
# says what it installs. Debian packages come from apt (run as root); Go tools
# are built at the versions pinned in go.mod (`tool` directives).
set -euo pipefail
cd "$(dirname "$0")/.."

# command-or-check -> Debian package that provides it
declare -a wanted=(
  "redis-server:redis-server"
  "redis-cli:redis-tools"
  "redis-benchmark:redis-tools"
  "protoc:protobuf-compiler"
  "grpc_python_plugin:protobuf-compiler-grpc"
  "/usr/bin/python3:python3"
  "py:grpc:python3-grpcio"
  "py:google.protobuf:python3-protobuf"
)

missing=()
for entry in "${wanted[@]}"; do
  pkg=${entry##*:}
  check=${entry%:*}
  case "$check" in
    py:*) /usr/bin/python3 -c "import ${check#py:}" 2>/dev/null || missing+=("$pkg") ;;
    /*) [ -x "$check" ] || missing+=("$pkg") ;;
    *) command -v "$check" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done

if [ ${#missing[@]} -gt 0 ]; then
  # de-duplicate, keep order
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  echo "deps: installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps: installed ${missing[*]}"
else
  echo "deps: Debian packages present (redis-server, protoc, grpc_python_plugin, python3-grpcio, python3-protobuf)"
fi

# Go tools pinned in go.mod: protoc-gen-go, protoc-gen-go-grpc, staticcheck.
tools="$PWD/build/tools"
mkdir -p "$tools"
GOBIN="$tools" go install tool
echo "deps: Go tools in build/tools: $(ls "$tools" | tr '\n' ' ')"
