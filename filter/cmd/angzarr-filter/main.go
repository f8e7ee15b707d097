// Command angzarr-filter is the Angzarr proxy-wasm filter. Build it with
// `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`; the host calls its
// exports, main never runs.
package main

import _ "github.com/angzarr-mesh/angzarr/filter/internal/abi"

func main() {}
