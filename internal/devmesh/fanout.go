package devmesh

import (
	"context"
	"sync"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// fanoutSource is the control plane's fan-out configuration (over xDS,
// xdsclient.FanoutClient), noting when the first one was applied so the
// mesh reports ready only once sagas and projectors are subscribed. The
// domains' coordinators in it are the local proxies: the generated topology
// names them (Domain.Coordinator).
type fanoutSource struct {
	inner   fanout.Source
	once    sync.Once
	applied chan struct{} // closed after the first accepted configuration
}

var _ fanout.Source = (*fanoutSource)(nil)

// Run implements fanout.Source.
func (s *fanoutSource) Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error {
	return s.inner.Run(ctx, func(cfg *pb.FanoutConfig) error {
		if err := apply(cfg); err != nil {
			return err
		}
		s.once.Do(func() { close(s.applied) })
		return nil
	})
}
