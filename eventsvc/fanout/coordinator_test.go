package fanout_test

import (
	"context"
	"sync"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/fulfillment"
	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/examples/go/order"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// coordinator is a real angzarr.BusinessCoordinator gRPC service that
// STANDS IN FOR THE FILTER in these tests: it loads the aggregate from the
// real event service (EventStore.Load, with the command's idempotency key),
// returns the earlier result for a known key, runs the example shop's
// business logic and appends with the idempotency key, reloading and
// running the logic again on a conflict when auto_resequence is set. The
// filter itself, which does the same inside Envoy, is covered by its own
// end-to-end suite.
type coordinator struct {
	pb.UnimplementedBusinessCoordinatorServer

	// es returns a client of the event service (its address may change
	// across restarts).
	es    func() pb.EventStoreClient
	logic map[string]pb.BusinessLogicServer

	mu         sync.Mutex
	sagaCmds   []*pb.CommandBook // commands with a saga origin, as received
	applied    int               // saga commands that stored events
	duplicates int               // saga commands answered from an earlier result
	onApplied  func(applied int)
	// fail, when set, is asked first about every command: a non-nil error
	// is the answer (nothing is loaded or stored), as from a broken link.
	fail func(cmd *pb.CommandBook) error
	// loseAnswer, when set, is asked after a command stored its events:
	// true answers UNAVAILABLE instead of the result (an ambiguous
	// failure: the command took effect, the caller does not know).
	loseAnswer func(cmd *pb.CommandBook) bool
}

func newCoordinator(es func() pb.EventStoreClient) *coordinator {
	return &coordinator{es: es, logic: map[string]pb.BusinessLogicServer{
		customer.Domain: customer.Logic(), order.Domain: order.Logic(), fulfillment.Domain: fulfillment.Logic(),
		inventory.Domain: inventory.Logic(),
	}}
}

func (c *coordinator) Handle(ctx context.Context, cmd *pb.CommandBook) (*pb.CommandResponse, error) {
	logic, ok := c.logic[cmd.GetCover().GetDomain()]
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "no logic for domain %q", cmd.GetCover().GetDomain())
	}
	cmd = proto.Clone(cmd).(*pb.CommandBook)
	if cmd.GetCover().GetCorrelationId() == "" {
		cmd.Cover.CorrelationId = uuid.NewString()
	}
	saga := cmd.GetSagaOrigin() != nil
	if saga {
		c.mu.Lock()
		c.sagaCmds = append(c.sagaCmds, cmd)
		c.mu.Unlock()
	}
	c.mu.Lock()
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		if err := fail(cmd); err != nil {
			return nil, err
		}
	}
	es := c.es()
	for attempt := 0; ; attempt++ {
		ld, err := es.Load(ctx, &pb.LoadRequest{Cover: cmd.GetCover(), IdempotencyKey: cmd.GetIdempotencyKey()})
		if err != nil {
			return nil, err
		}
		if ld.GetPrior() != nil {
			c.count(saga, true)
			return &pb.CommandResponse{Events: ld.GetPrior().GetBook()}, nil
		}
		events, err := logic.Handle(ctx, &pb.ContextualCommand{Events: ld.GetBook(), Command: cmd})
		if err == nil {
			// The filter answers a decision asking for compensation
			// actions as a refusal and stores nothing.
			err = sdk.CompensationRequested(events)
		}
		if err != nil {
			return nil, err
		}
		resp, err := es.Append(ctx, &pb.AppendRequest{
			Cover: cmd.GetCover(), ExpectedSequence: ld.GetNextSequence(), Pages: events.GetPages(),
			SnapshotState: events.GetSnapshotState(), IdempotencyKey: cmd.GetIdempotencyKey(),
		})
		if status.Code(err) == codes.Aborted && cmd.GetAutoResequence() && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.count(saga, resp.GetDuplicate())
		c.mu.Lock()
		lose := c.loseAnswer
		c.mu.Unlock()
		if lose != nil && lose(cmd) {
			return nil, status.Error(codes.Unavailable, "the answer was lost")
		}
		return &pb.CommandResponse{Events: resp.GetBook()}, nil
	}
}

func (c *coordinator) count(saga, duplicate bool) {
	if !saga {
		return
	}
	c.mu.Lock()
	if duplicate {
		c.duplicates++
	} else {
		c.applied++
	}
	n, hook := c.applied, c.onApplied
	c.mu.Unlock()
	if hook != nil && !duplicate {
		hook(n)
	}
}

// setFail sets (nil: clears) the coordinator's failure hook.
func (c *coordinator) setFail(fail func(cmd *pb.CommandBook) error) {
	c.mu.Lock()
	c.fail = fail
	c.mu.Unlock()
}

func (c *coordinator) received() []*pb.CommandBook {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*pb.CommandBook(nil), c.sagaCmds...)
}
