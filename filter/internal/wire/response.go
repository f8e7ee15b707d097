package wire

import (
	"encoding/binary"
	"strings"
)

// The messages the filter builds for the business logic and the client.

// ContextualCommand encodes angzarr.ContextualCommand from the loaded book
// (raw; nil for none) and the command. cover, when set, is merged into the
// book's cover (protobuf merges repeated occurrences of a message field),
// so the history is never decoded.
func ContextualCommand(bookRaw []byte, cover *Cover, cmd *CommandBook) []byte {
	events, cmdSize, size := contextualCommandSize(bookRaw, cover, cmd)
	return appendContextualCommand(make([]byte, 0, size), bookRaw, cover, cmd, events, cmdSize)
}

// FramedContextualCommand is ContextualCommand as one uncompressed gRPC
// message (the 5-byte length prefix, then the message), built with a
// single allocation and a single copy of the history, which is most of the
// bytes: this runs for every command.
func FramedContextualCommand(bookRaw []byte, cover *Cover, cmd *CommandBook) []byte {
	return AppendFramedContextualCommand(nil, bookRaw, cover, cmd)
}

// AppendFramedContextualCommand is FramedContextualCommand built in dst's
// storage when it has room (dst's contents are discarded), else in a new
// allocation: a caller whose host copies the body out at once can reuse
// one buffer for every command.
func AppendFramedContextualCommand(dst, bookRaw []byte, cover *Cover, cmd *CommandBook) []byte {
	events, cmdSize, size := contextualCommandSize(bookRaw, cover, cmd)
	var b []byte
	if cap(dst) >= 5+size {
		b = dst[:5]
		binary.BigEndian.PutUint32(b[1:5], uint32(size))
		b[0] = 0
	} else {
		b = frame(size)
	}
	return appendContextualCommand(b, bookRaw, cover, cmd, events, cmdSize)
}

// contextualCommandSize returns the sizes of the ContextualCommand's
// events and command fields' contents and of the whole message.
func contextualCommandSize(bookRaw []byte, cover *Cover, cmd *CommandBook) (events, command, size int) {
	events = len(bookRaw) + coverSize(1, cover)
	size = fieldSize(1, events)
	if cmd != nil {
		command = cmd.size()
		size += fieldSize(2, command)
	}
	return events, command, size
}

func appendContextualCommand(b, bookRaw []byte, cover *Cover, cmd *CommandBook, events, command int) []byte {
	b = appendHeader(b, 1, events)
	b = append(b, bookRaw...)
	if cover != nil {
		b = appendCover(b, 1, cover)
	}
	if cmd != nil {
		b = cmd.Append(appendHeader(b, 2, command))
	}
	return b
}

// frame returns the 5-byte gRPC frame header of an uncompressed message of
// size bytes, with room for the message.
func frame(size int) []byte {
	b := make([]byte, 5, 5+size)
	binary.BigEndian.PutUint32(b[1:5], uint32(size))
	return b
}

// CommandResponse encodes angzarr.CommandResponse{events} from a raw
// EventBook; cover, when set, is merged into the book's cover.
func CommandResponse(bookRaw []byte, cover *Cover) []byte {
	events := coverSize(1, cover) + len(bookRaw)
	return appendCommandResponse(make([]byte, 0, fieldSize(1, events)), bookRaw, cover, events)
}

// FramedCommandResponse is CommandResponse as one uncompressed gRPC message,
// built with a single allocation.
func FramedCommandResponse(bookRaw []byte, cover *Cover) []byte {
	events := coverSize(1, cover) + len(bookRaw)
	return appendCommandResponse(frame(fieldSize(1, events)), bookRaw, cover, events)
}

func appendCommandResponse(b, bookRaw []byte, cover *Cover, events int) []byte {
	b = appendHeader(b, 1, events)
	if cover != nil {
		b = appendCover(b, 1, cover)
	}
	return append(b, bookRaw...)
}

// Any encodes a google.protobuf.Any.
func Any(typeURL string, value []byte) []byte {
	b := make([]byte, 0, sizeString(1, typeURL)+sizeNonEmptyBytes(2, value))
	b = appendString(b, 1, typeURL)
	return appendNonEmptyBytes(b, 2, value)
}

// RPCStatus encodes a google.rpc.Status with raw Any details.
func RPCStatus(code int32, message string, details ...[]byte) []byte {
	n := sizeUint(1, uint64(uint32(code))) + sizeString(2, message)
	for _, d := range details {
		n += sizeBytes(3, d)
	}
	b := make([]byte, 0, n)
	b = appendUint(b, 1, uint64(uint32(code)))
	b = appendString(b, 2, message)
	for _, d := range details {
		b = appendBytes(b, 3, d)
	}
	return b
}

// compensationRequestName is the full name of angzarr.CompensationRequest,
// the last segment of its type URL.
const compensationRequestName = "angzarr.CompensationRequest"

// CompensationRequest reports whether ev, an event page's raw
// google.protobuf.Any, holds an angzarr.CompensationRequest (a type URL
// whose last segment names it, whatever its prefix, as protobuf resolves
// it), and its reason.
func CompensationRequest(ev []byte) (reason string, ok bool) {
	var typeURL string
	var value []byte
	err := walk("Any", ev, nil, func(f field) error {
		var err error
		switch f.num {
		case 1:
			typeURL, err = str("Any.type_url", f)
		case 2:
			value, err = bytesOf("Any.value", f)
		}
		return err
	})
	if err != nil || typeURL != compensationRequestName && !strings.HasSuffix(typeURL, "/"+compensationRequestName) {
		return "", false
	}
	_ = walk("CompensationRequest", value, nil, func(f field) error {
		if f.num == 2 {
			reason, _ = str("CompensationRequest.reason", f)
		}
		return nil
	})
	return reason, true
}
