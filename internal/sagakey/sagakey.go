// Package sagakey derives the idempotency key of a saga-issued command from
// its origin. The event service's asynchronous dispatcher and the filter's
// CASCADE sync mode derive it the same way, so a command executed
// synchronously during a cascade and redelivered later by the dispatcher
// takes effect once. Pure Go without dependencies: the Wasm filter uses it.
package sagakey

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Prefix starts every key.
const Prefix = "saga-"

// Key is the idempotency key of the index-th command saga sagaName issued
// for the event with sequence seq of aggregate (domain, root): "saga-" and
// the hex SHA-256 of the uvarint-length-prefixed saga name, domain and root
// bytes, the big-endian uint32 seq and the big-endian uint64 index.
func Key(sagaName, domain string, root []byte, seq uint32, index int) string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	field := func(b []byte) {
		h.Write(buf[:binary.PutUvarint(buf[:], uint64(len(b)))])
		h.Write(b)
	}
	field([]byte(sagaName))
	field([]byte(domain))
	field(root)
	h.Write(binary.BigEndian.AppendUint32(nil, seq))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(index)))
	return Prefix + hex.EncodeToString(h.Sum(nil))
}
