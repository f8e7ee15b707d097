package fanout

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Admin serves angzarr.FanoutAdmin over a dispatcher.
type Admin struct {
	pb.UnimplementedFanoutAdminServer
	d *Dispatcher
}

var _ pb.FanoutAdminServer = (*Admin)(nil)

// Admin returns the dispatcher's FanoutAdmin service.
func (d *Dispatcher) Admin() *Admin { return &Admin{d: d} }

// Register registers the service on g.
func (a *Admin) Register(g grpc.ServiceRegistrar) { pb.RegisterFanoutAdminServer(g, a) }

// ListDeadLetters implements angzarr.FanoutAdmin.
func (a *Admin) ListDeadLetters(ctx context.Context, req *pb.ListDeadLettersRequest) (*pb.ListDeadLettersResponse, error) {
	if req.GetSubscriber() != "" {
		if err := store.ValidateDomain("subscriber", req.GetSubscriber()); err != nil {
			return nil, toStatus(err)
		}
	}
	limit := int(req.GetLimit())
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	dls, err := a.d.DeadLetters(ctx, req.GetSubscriber(), limit)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ListDeadLettersResponse{DeadLetters: dls}, nil
}

// ReplayDeadLetters implements angzarr.FanoutAdmin.
func (a *Admin) ReplayDeadLetters(ctx context.Context, req *pb.ReplayDeadLettersRequest) (*pb.ReplayDeadLettersResponse, error) {
	if req.GetSubscriber() == "" {
		return nil, status.Error(codes.InvalidArgument, "subscriber: required")
	}
	res, err := a.d.Replay(ctx, req.GetSubscriber(), req.GetIds())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ReplayDeadLettersResponse{Results: res}, nil
}

// DiscardDeadLetters implements angzarr.FanoutAdmin.
func (a *Admin) DiscardDeadLetters(ctx context.Context, req *pb.DiscardDeadLettersRequest) (*pb.DiscardDeadLettersResponse, error) {
	if err := store.ValidateDomain("subscriber", req.GetSubscriber()); err != nil {
		return nil, toStatus(err)
	}
	if len(req.GetIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "ids: at least one dead letter to discard")
	}
	out, err := a.d.Discard(ctx, req.GetSubscriber(), req.GetIds())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DiscardDeadLettersResponse{Discarded: out}, nil
}

// ResetSubscriber implements angzarr.FanoutAdmin.
func (a *Admin) ResetSubscriber(ctx context.Context, req *pb.ResetSubscriberRequest) (*pb.SubscriberProgress, error) {
	p, err := a.d.Reset(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return p, nil
}

// GetSubscriberProgress implements angzarr.FanoutAdmin.
func (a *Admin) GetSubscriberProgress(ctx context.Context, req *pb.GetSubscriberProgressRequest) (*pb.SubscriberProgress, error) {
	p, err := a.d.Progress(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return p, nil
}

// toStatus maps the dispatcher's and the store's errors to gRPC statuses.
func toStatus(err error) error {
	switch {
	case errors.Is(err, ErrUnknownSubscriber), errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrNotProjector):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, errClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
