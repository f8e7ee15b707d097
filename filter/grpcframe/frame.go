// Package grpcframe encodes and decodes the gRPC length-prefixed message
// framing (1 byte compressed flag, 4 bytes big-endian length, the message) of
// unary gRPC bodies. It is pure Go, shared by the wasm filter and its tests.
package grpcframe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the size of a gRPC frame header.
const HeaderLen = 5

// Errors returned by Decode; test them with errors.Is.
var (
	// ErrCompressed reports a message with the compressed flag set; the
	// filter does not decompress, so the caller must refuse it.
	ErrCompressed = errors.New("grpc message is compressed (grpc-encoding is not supported)")
	// ErrTruncated reports a body shorter than its frame header says.
	ErrTruncated = errors.New("grpc frame truncated")
	// ErrTrailingData reports bytes after the one expected message (a
	// streaming body on a unary method).
	ErrTrailingData = errors.New("grpc body holds more than one message")
	// ErrBadFlag reports a flag byte other than 0 or 1.
	ErrBadFlag = errors.New("grpc frame has an invalid flag byte")
)

// Encode frames one uncompressed message.
func Encode(msg []byte) []byte {
	out := make([]byte, HeaderLen+len(msg))
	binary.BigEndian.PutUint32(out[1:HeaderLen], uint32(len(msg)))
	copy(out[HeaderLen:], msg)
	return out
}

// Decode returns the single uncompressed message of a unary gRPC body. The
// returned slice aliases body.
func Decode(body []byte) ([]byte, error) {
	if len(body) < HeaderLen {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrTruncated, len(body), HeaderLen)
	}
	switch body[0] {
	case 0:
	case 1:
		return nil, ErrCompressed
	default:
		return nil, fmt.Errorf("%w: %#x", ErrBadFlag, body[0])
	}
	n := binary.BigEndian.Uint32(body[1:HeaderLen])
	rest := uint64(len(body) - HeaderLen)
	if uint64(n) > rest {
		return nil, fmt.Errorf("%w: header says %d bytes, %d present", ErrTruncated, n, rest)
	}
	if uint64(n) < rest {
		return nil, fmt.Errorf("%w: %d bytes after the message", ErrTrailingData, rest-uint64(n))
	}
	return body[HeaderLen:], nil
}
