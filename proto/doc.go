// Package proto holds Angzarr Mesh's protocol: the .proto files and the Go
// code generated beside them (see scripts/protogen.sh and `make proto`).
// Its test fails when the committed generated code differs from a fresh
// generation.
package proto
