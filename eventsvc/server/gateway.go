package server

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"

	"github.com/angzarr-mesh/angzarr/internal/wellknown"
)

// CorrelationHeader is the response header that carries a command's
// correlation id (the filter sets the same header).
const CorrelationHeader = wellknown.CorrelationHeader

// Coordinators finds the angzarr.BusinessCoordinator of a domain: the
// domain's address in the mesh, so the command passes through that domain's
// own filter.
type Coordinators interface {
	// Coordinator returns a client for the domain's BusinessCoordinator, or
	// an error when the domain is unknown.
	Coordinator(domain string) (pb.BusinessCoordinatorClient, error)
}

// Gateway implements angzarr.CommandGateway: it executes a command through
// the target domain's BusinessCoordinator and streams every EventBook that
// shares the command's correlation id as it is stored — the command's own
// events and everything sagas cause — until a count, a duration, or the
// client leaves.
//
// The stream follows the correlation id from before the command is sent,
// so nothing stored in between is missed; when the client supplies a
// correlation id that is already in use, earlier books with it are streamed
// too. A command the coordinator rejects ends the stream with its status.
type Gateway struct {
	pb.UnimplementedCommandGatewayServer

	s      *Server
	coords Coordinators
}

var _ pb.CommandGatewayServer = (*Gateway)(nil)

// NewGateway returns the CommandGateway of the server, executing commands
// through coords.
func (s *Server) NewGateway(coords Coordinators) *Gateway {
	return &Gateway{s: s, coords: coords}
}

// Register registers the CommandGateway service on g.
func (g *Gateway) Register(r grpc.ServiceRegistrar) { pb.RegisterCommandGatewayServer(r, g) }

// ExecuteStream executes the command and streams until the client leaves.
func (g *Gateway) ExecuteStream(cmd *pb.CommandBook, stream pb.CommandGateway_ExecuteStreamServer) error {
	return g.execute(stream, cmd, 0, 0)
}

// ExecuteStreamResponseCount executes the command and streams until count
// events (pages) were sent.
func (g *Gateway) ExecuteStreamResponseCount(req *pb.ExecuteStreamCountRequest, stream pb.CommandGateway_ExecuteStreamResponseCountServer) error {
	if req.GetCount() == 0 {
		return g.s.fail(stream.Context(), "ExecuteStreamResponseCount", store.Invalid("count", "must be positive"))
	}
	return g.execute(stream, req.GetCommand(), int(req.GetCount()), 0)
}

// ExecuteStreamResponseTime executes the command and streams for the
// requested duration.
func (g *Gateway) ExecuteStreamResponseTime(req *pb.ExecuteStreamTimeRequest, stream pb.CommandGateway_ExecuteStreamResponseTimeServer) error {
	d := req.GetDuration().AsDuration()
	if req.GetDuration() == nil || d <= 0 {
		return g.s.fail(stream.Context(), "ExecuteStreamResponseTime", store.Invalid("duration", "must be positive"))
	}
	return g.execute(stream, req.GetCommand(), 0, d)
}

// bookStream is what the three streaming RPCs share.
type bookStream interface {
	grpc.ServerStream
	Send(*pb.EventBook) error
}

func (g *Gateway) execute(stream bookStream, cmd *pb.CommandBook, count int, d time.Duration) error {
	ctx := stream.Context()
	domain := cmd.GetCover().GetDomain()
	if domain == "" {
		return g.s.fail(ctx, "CommandGateway", store.Invalid("command.cover.domain", "required"))
	}
	if g.coords == nil {
		return status.Error(codes.Unavailable, "command gateway: no domain coordinators configured")
	}
	client, err := g.coords.Coordinator(domain)
	if err != nil {
		return status.Errorf(codes.NotFound, "command gateway: domain %q: %v", domain, err)
	}
	cmd = proto.Clone(cmd).(*pb.CommandBook)
	if cmd.Cover.CorrelationId == "" {
		cmd.Cover.CorrelationId = uuid.NewString()
	}
	q, err := parseQuery(&pb.Query{Cover: &pb.Cover{CorrelationId: cmd.Cover.CorrelationId}})
	if err != nil {
		return g.s.fail(ctx, "CommandGateway", err)
	}
	if err := stream.SetHeader(metadata.Pairs(CorrelationHeader, cmd.Cover.CorrelationId)); err != nil {
		return err
	}

	// Follow before executing: an append after this point wakes the loop.
	sub := g.s.notify.subscribe("")
	defer sub.close()
	tick := time.NewTicker(g.s.poll)
	defer tick.Stop()
	f := newFeed(g.s.store, q)

	window := ctx
	if d > 0 {
		var cancel context.CancelFunc
		window, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	result := make(chan error, 1)
	go func() {
		_, err := client.Handle(ctx, cmd)
		result <- err
	}()

	sent := 0
	for {
		for {
			books, _, err := f.next(window)
			if err != nil {
				if window.Err() != nil {
					return nil // the duration is over (or the client left)
				}
				return g.s.fail(ctx, "CommandGateway", err)
			}
			for _, b := range books {
				if err := stream.Send(b); err != nil {
					return err
				}
				// Count events, not books: how pages are grouped into books
				// depends on when the feed reads them.
				if sent += len(b.GetPages()); count > 0 && sent >= count {
					return nil
				}
			}
			if len(books) == 0 {
				break
			}
		}
		select {
		case <-window.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil // the client left
			}
			return nil // the duration is over
		case <-g.s.stopping:
			return status.Error(codes.Unavailable, "event service shutting down")
		case err := <-result:
			if err != nil {
				return err // the command was rejected: pass its status through
			}
			result = nil // executed; keep following what it causes
		case <-sub.C:
		case <-tick.C:
		}
	}
}
