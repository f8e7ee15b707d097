package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ProcessManagerCoordinator serves angzarr.ProcessManagerCoordinator over a
// dispatcher: the process-manager steps a domain's filter runs for a
// SYNC_MODE_CASCADE command.
//
// Why the event service runs the step and the filter only executes its
// commands: a step is a load of the workflow's stream, the PM's call, one
// append under the step's idempotency key (StepKey) and the framework's
// ProcessManagerStep; the dispatcher already does exactly that
// (pmDelivery.decide), so running it here gives the CASCADE step the same
// key, the same stored step and the same prepared commands as the
// dispatcher's later delivery of the event, which then finds the step
// stored and sends those commands again under the same idempotency keys:
// every command takes effect once, whichever runs first. A copy of the
// step in the filter (a Wasm module without a protobuf runtime) would be a
// second implementation to keep identical. The filter executes the
// commands itself, with CASCADE, so that their effects (and their sagas')
// are in its answer.
//
// Authorization (eventsvc/authz): only a writer of the trigger's domain —
// its own filter, which may append that domain's events anyway — may run
// a step for an event of that domain, and only of a process manager fed
// by that domain.
type ProcessManagerCoordinator struct {
	pb.UnimplementedProcessManagerCoordinatorServer
	d *Dispatcher
}

var _ pb.ProcessManagerCoordinatorServer = (*ProcessManagerCoordinator)(nil)

// ProcessManagerCoordinator returns the dispatcher's
// angzarr.ProcessManagerCoordinator service.
func (d *Dispatcher) ProcessManagerCoordinator() *ProcessManagerCoordinator {
	return &ProcessManagerCoordinator{d: d}
}

// Register registers the service on g.
func (c *ProcessManagerCoordinator) Register(g grpc.ServiceRegistrar) {
	pb.RegisterProcessManagerCoordinatorServer(g, c)
}

// ErrNotFed is returned for a process-manager step asked for a process
// manager that is not fed by the trigger's domain (or is no process
// manager).
var ErrNotFed = errors.New("not a process manager fed by the domain")

// HandleSync implements angzarr.ProcessManagerCoordinator.
func (c *ProcessManagerCoordinator) HandleSync(ctx context.Context, req *pb.ProcessManagerSyncRequest) (*pb.SagaResponse, error) {
	cmds, err := c.d.ProcessManagerStep(ctx, req.GetProcessManager(), req.GetTrigger())
	if err != nil {
		var se interface{ GRPCStatus() *status.Status }
		var refused *RefusedError
		switch {
		case errors.Is(err, ErrNotFed):
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		case errors.As(err, &refused):
			return nil, status.Error(codes.Internal, err.Error())
		case errors.As(err, &se):
			// The process manager's own answer (a refusal, or it could
			// not be reached).
			st := se.GRPCStatus()
			return nil, status.Error(st.Code(), err.Error())
		}
		return nil, toStatus(err)
	}
	return &pb.SagaResponse{Commands: cmds}, nil
}

// ProcessManagerStep decides and stores the step of the process manager
// name for trigger's one event, as the dispatcher does when it delivers
// that event (pmDelivery.deliver), and returns the step's commands,
// prepared, without sending them. A step stored before returns its stored
// commands; an event without a correlation id belongs to no workflow and
// returns none, as does an event the PM decides nothing for.
func (d *Dispatcher) ProcessManagerStep(ctx context.Context, name string, trigger *pb.EventBook) ([]*pb.CommandBook, error) {
	sub, err := d.subscription(name)
	if err != nil {
		return nil, err
	}
	domain := trigger.GetCover().GetDomain()
	if sub.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER || !slices.Contains(sub.GetSourceDomains(), domain) {
		return nil, fmt.Errorf("%w: %q is no process manager fed by domain %q", ErrNotFed, name, domain)
	}
	if len(trigger.GetPages()) != 1 {
		return nil, fmt.Errorf("%w: trigger: want exactly one event page, got %d", store.ErrInvalid, len(trigger.GetPages()))
	}
	page := trigger.GetPages()[0]
	if _, ok := page.GetSequence().(*pb.EventPage_Num); !ok {
		return nil, fmt.Errorf("%w: trigger: the page has no sequence", store.ErrInvalid)
	}
	if len(trigger.GetCover().GetRoot().GetValue()) != 16 {
		return nil, fmt.Errorf("%w: trigger: cover.root is not a 16-byte UUID", store.ErrInvalid)
	}
	corr := trigger.GetCover().GetCorrelationId()
	if corr == "" {
		return nil, nil
	}
	p := newPMDelivery(d, sub)
	trig := &pb.EventBook{Cover: trigger.GetCover(), Pages: []*pb.EventPage{page}}
	cmds, _, _, err := p.decide(ctx, corr, StepKey(name, trigger.GetCover(), page.GetNum()),
		&pb.ProcessManagerRequest{Trigger: trig},
		&pb.ProcessManagerStep{Trigger: trigger.GetCover(), TriggerSequence: page.GetNum()})
	return cmds, err
}
