package fanout

import (
	"context"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Source delivers fan-out configurations. FileSource reads a file; the
// control plane's xDS resource (type.googleapis.com/angzarr.FanoutConfig)
// will be another Source.
type Source interface {
	// Run calls apply with the current configuration, then with every new
	// one, until ctx is done. An error of apply on the first configuration
	// ends Run with it; later errors leave the previous configuration in
	// place.
	Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error
}

// StaticSource is a Source that applies one configuration and keeps it.
type StaticSource struct {
	// Config is the configuration.
	Config *pb.FanoutConfig
}

// Run implements Source.
func (s StaticSource) Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error {
	if err := apply(s.Config); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
