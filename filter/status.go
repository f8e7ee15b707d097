package filter

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
)

// Code is a gRPC status code (the numbering of google.rpc.Code).
type Code uint32

// The gRPC status codes the filter answers with.
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

// ErrStreamGone is returned by Host.SetEffectiveContext when the stream a
// callout belonged to has ended (the host answered BAD_ARGUMENT).
var ErrStreamGone = errors.New("stream is gone")

// Status is a gRPC status the filter answers a command with: a typed error
// carrying the code, the message and optional details.
type Status struct {
	Code    Code
	Message string
	// Conflict, when set, is packed into grpc-status-details-bin as an
	// angzarr.SequenceConflict.
	Conflict *wire.SequenceConflict
	// Partial, when set, is an encoded angzarr.CommandResponse packed into
	// grpc-status-details-bin: what a sync-mode command stored before its
	// synchronous part failed.
	Partial []byte
	// Details is a grpc-status-details-bin value (the business logic's
	// CompensationRequest), sent as it is when the filter adds none of
	// its own.
	Details string
}

// Error implements error.
func (s *Status) Error() string { return fmt.Sprintf("grpc status %d: %s", s.Code, s.Message) }

// statusf builds a Status.
func statusf(c Code, format string, args ...any) *Status {
	return &Status{Code: c, Message: fmt.Sprintf(format, args...)}
}

// conflictStatus is the ABORTED answer to a stale expected sequence.
func conflictStatus(cover *wire.Cover, expected, next uint32, why string) *Status {
	return &Status{
		Code: Aborted,
		Message: fmt.Sprintf("%swrong expected sequence for %s/%s: the command expected %d, the aggregate's next sequence is %d",
			why, cover.Domain, rootString(cover.Root), expected, next),
		Conflict: &wire.SequenceConflict{Cover: cover.Key(), ExpectedSequence: expected, NextSequence: next},
	}
}

// sequenceConflictType is the type URL of the ABORTED detail.
const sequenceConflictType = "type.googleapis.com/angzarr.SequenceConflict"

// commandResponseType is the type URL of a sync failure's partial result.
const commandResponseType = "type.googleapis.com/angzarr.CommandResponse"

// detailsHeader encodes s as a grpc-status-details-bin value ("" when s has
// no details).
func (s *Status) detailsHeader() string {
	var details [][]byte
	if s.Conflict != nil {
		details = append(details, wire.Any(sequenceConflictType, s.Conflict.Marshal()))
	}
	if s.Partial != nil {
		details = append(details, wire.Any(commandResponseType, s.Partial))
	}
	if len(details) == 0 {
		return s.Details
	}
	b := wire.RPCStatus(int32(s.Code), s.Message, details...)
	return base64.RawStdEncoding.EncodeToString(b)
}

// grpcStatusHeader is the decimal value of a grpc-status header.
func grpcStatusHeader(c Code) string { return strconv.FormatUint(uint64(c), 10) }

// encodeGrpcMessage percent-encodes a grpc-message value as the gRPC HTTP/2
// protocol requires (bytes outside printable ASCII, and '%').
func encodeGrpcMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(msg))
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			out = append(out, c)
			continue
		}
		out = append(out, '%', hex[c>>4], hex[c&15])
	}
	return string(out)
}
