package sdk

import (
	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// RootOf converts a UUID to the protocol's UUID message.
func RootOf(id uuid.UUID) *angzarr.UUID { return &angzarr.UUID{Value: id[:]} }

// RootID converts the protocol's UUID message to a UUID; it fails unless the
// message holds exactly 16 bytes.
func RootID(root *angzarr.UUID) (uuid.UUID, error) {
	id, err := uuid.FromBytes(root.GetValue())
	if err != nil {
		return uuid.Nil, Invalid("root is not a UUID: %v", err)
	}
	return id, nil
}
