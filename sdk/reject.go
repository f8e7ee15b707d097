package sdk

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Rejection is a business rule refusing a command. Returned from a command
// handler it reaches the caller as a gRPC status with Code and Message, and
// the framework stores nothing.
type Rejection struct {
	// Code is the gRPC code: codes.InvalidArgument for a malformed command,
	// codes.FailedPrecondition when the aggregate's state forbids it,
	// codes.NotFound when the command names something the aggregate lacks.
	Code codes.Code
	// Message says which rule refused the command, for people.
	Message string
}

// Error returns the message with the code's name.
func (r *Rejection) Error() string { return r.Code.String() + ": " + r.Message }

// GRPCStatus lets gRPC (and status.FromError) turn the rejection into a
// status with its code and message.
func (r *Rejection) GRPCStatus() *status.Status { return status.New(r.Code, r.Message) }

// Invalid rejects a malformed command (INVALID_ARGUMENT), e.g.
// Invalid("points must be positive, got %d", n).
func Invalid(format string, args ...any) error {
	return &Rejection{Code: codes.InvalidArgument, Message: fmt.Sprintf(format, args...)}
}

// Precondition rejects a command the aggregate's state forbids
// (FAILED_PRECONDITION), e.g. Precondition("customer already exists").
func Precondition(format string, args ...any) error {
	return &Rejection{Code: codes.FailedPrecondition, Message: fmt.Sprintf(format, args...)}
}

// NotFound rejects a command naming something the aggregate does not hold
// (NOT_FOUND), e.g. NotFound("product %s not in cart", id).
func NotFound(format string, args ...any) error {
	return &Rejection{Code: codes.NotFound, Message: fmt.Sprintf(format, args...)}
}
