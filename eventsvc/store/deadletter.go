package store

import (
	"context"
	"errors"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ErrNotFound is returned for a dead letter that does not exist.
var ErrNotFound = errors.New("not found")

// DeadLetters is the durable dead-letter log of fan-out: events a subscriber
// failed to handle after its last attempt, kept with the error until they
// are replayed.
type DeadLetters interface {
	// AddDeadLetter stores dl (its id is ignored) and returns its new id.
	AddDeadLetter(ctx context.Context, dl *pb.DeadLetter) (string, error)
	// ListDeadLetters returns up to limit dead letters of the subscriber, or
	// of every subscriber when it is empty, oldest first per subscriber.
	ListDeadLetters(ctx context.Context, subscriber string, limit int) ([]*pb.DeadLetter, error)
	// RemoveDeadLetter deletes one dead letter; ErrNotFound when there is no
	// such dead letter of the subscriber.
	RemoveDeadLetter(ctx context.Context, subscriber, id string) error
}
