// Package client holds the logic of the client verbs of the angzarr CLI:
// `angzarr send` (a command to a domain's angzarr.BusinessCoordinator) and
// `angzarr events` (angzarr.EventQuery: histories, correlation ids, points
// in time, live follow). Both find the local mesh through
// .angzarr/endpoints.json (package devmesh/endpoints) unless given an
// address, and resolve message types from the protos registered in the
// binary (the example shop's, package proto/examples) or from a descriptor
// set (protoc --include_imports --descriptor_set_out).
package client
