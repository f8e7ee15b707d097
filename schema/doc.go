// Package schema guards stored events against schema changes that would
// corrupt them. Events are permanent: a .proto change that reuses a field
// number, changes a field's type or renames an event message does not fail
// at build time, it silently misreads years of history on the next load.
//
// Check compares the descriptors events were stored under with the ones a
// workload is about to run, starting from the stored event types and
// following every message and enum they reach, and reports each breaking
// change with the rule it breaks, the event type, the field path and the
// field number. The rules and their names follow buf's breaking-change
// categories WIRE and WIRE_JSON (https://buf.build/docs/breaking/rules/):
// WIRE protects the binary form the store keeps; WIRE_JSON (the default)
// also protects the JSON that projections and the CLI read. One rule is
// ours: a stored event type that no longer exists (MESSAGE_NO_DELETE), since
// its type URL is in every stored event.
//
// Descriptors come from a FileDescriptorSet file (protoc
// --include_imports --descriptor_set_out, or buf build -o) or from a running
// service's gRPC reflection (every SDK-built service serves it); see
// ReadFileSet and Reflect.
//
// Why our own checker and not buf's: buf's breaking checker is internal to
// its CLI module (private/...), so it cannot be imported, and running the
// buf binary is not possible on the machines this runs on (no downloads at
// run time). The rules are small and specified by the protobuf language
// guide's "Updating a message type"; the tests hold a before/after .proto for
// each one.
package schema
