#!/usr/bin/env bash
# Generates Go code for every .proto under proto/ into OUT (default: proto/,
# beside the sources), and the Python stubs the Python customer example needs
# into PYOUT (default: examples/python/customer/gen). The plugins are built at
# the versions pinned in go.mod, so a fresh generation is byte-for-byte
# reproducible; the staleness test in proto/ generates into temp dirs and
# compares.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-proto}
pyout=${2:-examples/python/customer/gen}
mkdir -p "$out" "$pyout"

plugins=$(mktemp -d)
trap 'rm -rf "$plugins"' EXIT
go build -o "$plugins/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

mapfile -t files < <(cd proto && find . -name '*.proto' | sed 's#^\./##' | sort)
protoc -I proto \
  --plugin=protoc-gen-go="$plugins/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$plugins/protoc-gen-go-grpc" \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  "${files[@]}"

# Python (examples/python/customer): its messages and the BusinessLogic service.
protoc -I proto --python_out="$pyout" \
  angzarr/types.proto angzarr/aggregate.proto examples/customer.proto
protoc -I proto --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  --grpc_python_out="$pyout" angzarr/aggregate.proto
