package schemareg

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Recording decorates the store the gRPC server appends through: after an
// append is stored, the types it used that the registry does not hold yet
// are recorded (first use). It costs a map lookup per page, and no
// allocation, once a type is known; a first use costs a registry load and append. A failure to record
// does not fail the append (which is stored): it is logged, and the next
// append of the type tries again.
type Recording struct {
	store.Store
	R *Registry
}

// Append implements store.Appender.
func (s Recording) Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error) {
	res, err := s.Store.Append(ctx, req)
	if err != nil || res.Duplicate || req.Aggregate.Domain == Domain {
		return res, err
	}
	if s.R.allKnown(req) {
		return res, nil
	}
	if us := s.R.unknown(req.Aggregate.Domain, uses(req)); len(us) > 0 {
		if rerr := s.R.recordFirstUse(ctx, req.Aggregate.Domain, us); rerr != nil {
			s.R.opts.Logger.Warn("schema registry: could not record a first use; the next append of the type retries",
				"domain", req.Aggregate.Domain, "err", rerr)
		}
	}
	return res, nil
}

// LoadEncoded implements store.EncodedLoader when the wrapped store does
// (the recording is about appends; loads pass through as they are).
func (s Recording) LoadEncoded(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	if el, ok := s.Store.(store.EncodedLoader); ok {
		return el.LoadEncoded(ctx, agg, q)
	}
	return s.Store.Load(ctx, agg, q)
}

// Serve registers the registry's gRPC service (angzarr.SchemaRegistry) on g.
func (r *Registry) Serve(g grpc.ServiceRegistrar) { pb.RegisterSchemaRegistryServer(g, server{R: r}) }

// server serves angzarr.SchemaRegistry.
type server struct {
	pb.UnimplementedSchemaRegistryServer
	R *Registry
}

// Register implements angzarr.SchemaRegistry: a refusal is
// FAILED_PRECONDITION with the SchemaRefusal among its details.
func (s server) Register(ctx context.Context, req *pb.RegisterSchemaRequest) (*pb.RegisterSchemaResponse, error) {
	resp, err := s.R.Register(ctx, req.GetDomain(), req.GetFileDescriptorSet(), req.GetDryRun(), req.GetSource())
	var ref *Refusal
	if errors.As(err, &ref) {
		st, derr := status.New(codes.FailedPrecondition, ref.Error()).WithDetails(ref.SchemaRefusal)
		if derr != nil {
			return nil, status.Error(codes.FailedPrecondition, ref.Error())
		}
		return nil, st.Err()
	}
	return resp, toStatus(err)
}

// Status implements angzarr.SchemaRegistry.
func (s server) Status(ctx context.Context, req *pb.SchemaStatusRequest) (*pb.SchemaStatusResponse, error) {
	resp, err := s.R.Status(ctx, req.GetDomain())
	return resp, toStatus(err)
}

// Descriptors implements angzarr.SchemaRegistry.
func (s server) Descriptors(ctx context.Context, req *pb.SchemaDescriptorsRequest) (*pb.SchemaDescriptorsResponse, error) {
	resp, err := s.R.Descriptors(ctx, req.GetDomain())
	return resp, toStatus(err)
}

func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
