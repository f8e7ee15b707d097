#!/usr/bin/env bash
# Installs what this machine lacks to build, run and test Angzarr Mesh, and
# says what it installs. Debian packages come from apt (run as root, or with
# sudo); Go tools are built at the versions pinned in go.mod (`tool`
# directives), which is preferred wherever a tool exists as a Go module.
#
# Each need is checked by what the build actually uses, not by a package
# name: a command on PATH, an absolute file (the protobuf well-known types
# that protoc imports live in libprotobuf-dev, not in protobuf-compiler), or
# a Python module importable by Debian's /usr/bin/python3. A package is
# installed only when one of its checks fails, so on a machine that has
# everything this asks apt nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# check -> Debian package that satisfies it
#   cmd:NAME   a command on PATH
#   file:PATH  an existing file
#   py:MODULE  importable by /usr/bin/python3
declare -a wanted=(
  "cmd:git:git"
  "cmd:gcc:gcc"                                   # cgo, which -race needs
  "cmd:redis-server:redis-server"
  "cmd:redis-cli:redis-tools"
  "cmd:redis-benchmark:redis-tools"
  "cmd:protoc:protobuf-compiler"
  "file:/usr/include/google/protobuf/any.proto:libprotobuf-dev"
  "file:/usr/include/google/protobuf/timestamp.proto:libprotobuf-dev"
  "file:/usr/include/google/protobuf/duration.proto:libprotobuf-dev"
  "file:/usr/include/google/protobuf/empty.proto:libprotobuf-dev"
  "file:/usr/include/google/protobuf/descriptor.proto:libprotobuf-dev"
  "cmd:grpc_python_plugin:protobuf-compiler-grpc"
  "file:/usr/bin/python3:python3"
  "py:grpc:python3-grpcio"
  "py:google.protobuf:python3-protobuf"
  "cmd:chromium:chromium"                         # the console's browser test (chromedp)
)

# satisfied ENTRY: whether this machine has what ENTRY checks.
satisfied() {
  local check=${1%:*}
  local kind=${check%%:*} what=${check#*:}
  case "$kind" in
    cmd) command -v "$what" >/dev/null 2>&1 ;;
    file) [ -e "$what" ] ;;
    py) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import $what" 2>/dev/null ;;
    *) echo "deps: bad check $1" >&2; exit 2 ;;
  esac
}

# --list-packages: the Debian packages this script may install, one a line
# (make fresh-check --purge removes them first).
if [ "${1:-}" = "--list-packages" ]; then
  printf '%s\n' "${wanted[@]##*:}" | awk '!seen[$0]++'
  exit 0
fi

missing=()
for entry in "${wanted[@]}"; do
  if ! satisfied "$entry"; then
    check=${entry%:*}
    echo "deps: missing: ${entry##*:} (${check%%:*} ${check#*:})"
    missing+=("${entry##*:}")
  fi
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
  # Check again: a package that installed but did not provide what was
  # checked (renamed, split) must fail here, not in a test 20 minutes on.
  for entry in "${wanted[@]}"; do
    satisfied "$entry" || { echo "deps: still missing after install: ${entry%:*} (package ${entry##*:})" >&2; exit 1; }
  done
  echo "deps: installed ${missing[*]}"
else
  echo "deps: Debian packages present (git, gcc, redis, protoc with the well-known types, grpc_python_plugin, python3-grpcio, python3-protobuf)"
fi

# Go tools pinned in go.mod: protoc-gen-go, protoc-gen-go-grpc, staticcheck.
tools="$PWD/build/tools"
mkdir -p "$tools"
GOBIN="$tools" go install tool
echo "deps: Go tools in build/tools: $(ls "$tools" | tr '\n' ' ')"
