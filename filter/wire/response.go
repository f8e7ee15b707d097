package wire

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"
)

// The messages the filter builds for the business logic and the client.

// ContextualCommand encodes angzarr.ContextualCommand from the loaded book
// (raw; nil for none) and the command. cover, when set, is merged into the
// book's cover (protobuf merges repeated occurrences of a message field),
// so the history is never decoded.
func ContextualCommand(bookRaw []byte, cover *Cover, cmd *CommandBook) []byte {
	var b []byte
	b = appendMessage(b, 1, func(b []byte) []byte {
		b = append(b, bookRaw...)
		if cover != nil {
			b = appendMessage(b, 1, cover.Append)
		}
		return b
	})
	if cmd != nil {
		b = appendMessage(b, 2, cmd.Append)
	}
	return b
}

// FramedContextualCommand is ContextualCommand as one uncompressed gRPC
// message (the 5-byte length prefix, then the message), built with a
// single allocation and a single copy of the history, which is most of the
// bytes: this runs for every command.
func FramedContextualCommand(bookRaw []byte, cover *Cover, cmd *CommandBook) []byte {
	var coverEnc, cmdEnc []byte
	events := len(bookRaw)
	if cover != nil {
		coverEnc = cover.Append(nil)
		events += fieldSize(1, len(coverEnc))
	}
	size := fieldSize(1, events)
	if cmd != nil {
		cmdEnc = cmd.Append(nil)
		size += fieldSize(2, len(cmdEnc))
	}
	b := make([]byte, 5, 5+size)
	binary.BigEndian.PutUint32(b[1:5], uint32(size))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(events))
	b = append(b, bookRaw...)
	if cover != nil {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, coverEnc)
	}
	if cmd != nil {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, cmdEnc)
	}
	return b
}

// fieldSize is the encoded size of a length-delimited field of n bytes.
func fieldSize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// CommandResponse encodes angzarr.CommandResponse{events} from a raw
// EventBook; cover, when set, is merged into the book's cover.
func CommandResponse(bookRaw []byte, cover *Cover) []byte {
	return appendMessage(nil, 1, func(b []byte) []byte {
		if cover != nil {
			b = appendMessage(b, 1, cover.Append)
		}
		return append(b, bookRaw...)
	})
}

// Any encodes a google.protobuf.Any.
func Any(typeURL string, value []byte) []byte {
	b := appendString(nil, 1, typeURL)
	return appendNonEmptyBytes(b, 2, value)
}

// RPCStatus encodes a google.rpc.Status with raw Any details.
func RPCStatus(code int32, message string, details ...[]byte) []byte {
	b := appendUint(nil, 1, uint64(uint32(code)))
	b = appendString(b, 2, message)
	for _, d := range details {
		b = appendBytes(b, 3, d)
	}
	return b
}
