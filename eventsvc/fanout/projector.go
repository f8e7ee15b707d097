package fanout

import (
	"context"
	"fmt"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// projectorDelivery calls angzarr.Projector/Handle with each log entry as
// it is: the pages carry their sequences, so a projector recognises and
// skips a redelivery.
type projectorDelivery struct {
	d   *Dispatcher
	sub *pb.Subscription
}

func (p *projectorDelivery) deliver(ctx context.Context, book *pb.EventBook) error {
	conn, err := p.d.conns.get(p.sub.GetAddress())
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, p.d.opts.CallTimeout)
	defer cancel()
	if _, err := pb.NewProjectorClient(conn).Handle(cctx, book); err != nil {
		return fmt.Errorf("projector %s at %s: %w", p.sub.GetName(), p.sub.GetAddress(), err)
	}
	return nil
}
