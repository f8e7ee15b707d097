// Package wire encodes and decodes the few Angzarr protocol messages the
// filter touches, directly on the protobuf wire format (protowire), without
// the generated code: the generated package also carries the gRPC stubs,
// which would drag net/http, TLS and the gRPC runtime into the Wasm module.
//
// Decoders keep the fields they do not know as raw bytes and encoders write
// them back, so a message passes through the filter unchanged apart from
// what the filter sets. Embedded messages the filter never looks into (Any
// payloads, timestamps, snapshots, whole loaded histories) stay raw bytes.
// Field numbers are those of proto/angzarr/*.proto; the native tests check
// every message against the generated code.
package wire
