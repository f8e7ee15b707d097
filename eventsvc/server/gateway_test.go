package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc/server"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/sqlite"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// coordinator stands in for a domain's BusinessCoordinator behind its
// filter (which has its own end-to-end suite): it stores one event for the
// command through the real EventStore and, like a saga would, one event on
// another aggregate with the same correlation id. A command whose first
// page carries "reject" is refused.
type coordinator struct {
	pb.UnimplementedBusinessCoordinatorServer
	es pb.EventStoreClient
}

func (c *coordinator) Handle(ctx context.Context, cmd *pb.CommandBook) (*pb.CommandResponse, error) {
	var v wrapperspb.StringValue
	if err := cmd.GetPages()[0].GetCommand().UnmarshalTo(&v); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if v.Value == "reject" {
		return nil, status.Error(codes.FailedPrecondition, "rejected by the business logic")
	}
	ev, _ := anypb.New(wrapperspb.String("did " + v.Value))
	page := func() []*pb.EventPage { return []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: ev}} }
	resp, err := c.es.Append(ctx, &pb.AppendRequest{Cover: cmd.Cover, Pages: page()})
	if err != nil {
		return nil, err
	}
	other := uuid.New()
	caused := &pb.Cover{Domain: "audit", Root: &pb.UUID{Value: other[:]}, CorrelationId: cmd.Cover.CorrelationId}
	if _, err := c.es.Append(ctx, &pb.AppendRequest{Cover: caused, Pages: page()}); err != nil {
		return nil, err
	}
	return &pb.CommandResponse{Events: resp.GetBook()}, nil
}

type coordinators map[string]pb.BusinessCoordinatorClient

func (c coordinators) Coordinator(domain string) (pb.BusinessCoordinatorClient, error) {
	if cl, ok := c[domain]; ok {
		return cl, nil
	}
	return nil, errors.New("no such domain")
}

// serve starts a gRPC server on 127.0.0.1:0 and returns a client
// connection to it.
func serve(t *testing.T, register func(*grpc.Server)) (*grpc.Server, string) {
	t.Helper()
	gs := grpc.NewServer()
	register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return gs, lis.Addr().String()
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// startGateway serves the event service (EventQuery, EventStore and the
// CommandGateway) on a real SQLite store, with the "order" domain's
// coordinator on a server of its own.
func startGateway(t *testing.T) pb.CommandGatewayClient {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv, err := server.New(st, server.Options{PollInterval: time.Hour}) // wake-ups come from appends
	if err != nil {
		t.Fatal(err)
	}
	// Clients connect lazily, so each side can be dialled before it serves.
	var esAddr string
	_, coordAddr := serve(t, func(g *grpc.Server) {
		pb.RegisterBusinessCoordinatorServer(g, &coordinator{es: pb.NewEventStoreClient(dialLater(t, &esAddr))})
	})
	coords := coordinators{"order": pb.NewBusinessCoordinatorClient(dial(t, coordAddr))}
	_, esAddr = serve(t, func(g *grpc.Server) {
		srv.Register(g)
		srv.NewGateway(coords).Register(g)
	})
	return pb.NewCommandGatewayClient(dial(t, esAddr))
}

// dialLater returns a connection to the address *addr holds when the first
// call is made.
func dialLater(t *testing.T, addr *string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///event-service", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", *addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func command(t *testing.T, what string) *pb.CommandBook {
	t.Helper()
	c, err := anypb.New(wrapperspb.String(what))
	if err != nil {
		t.Fatal(err)
	}
	root := uuid.New()
	return &pb.CommandBook{Cover: &pb.Cover{Domain: "order", Root: &pb.UUID{Value: root[:]}}, Pages: []*pb.CommandPage{{Command: c}}}
}

func TestGatewayStreamsTheCommandsEffects(t *testing.T) {
	gw := startGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("count", func(t *testing.T) {
		stream, err := gw.ExecuteStreamResponseCount(ctx, &pb.ExecuteStreamCountRequest{Command: command(t, "create"), Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := stream.Header()
		if err != nil {
			t.Fatal(err)
		}
		cid := hdr.Get(server.CorrelationHeader)
		if len(cid) != 1 || cid[0] == "" {
			t.Fatalf("correlation header = %v", hdr)
		}
		domains := map[string]bool{}
		for i := 0; i < 2; i++ {
			b, err := stream.Recv()
			if err != nil {
				t.Fatalf("book %d: %v", i, err)
			}
			if b.GetCover().GetCorrelationId() != cid[0] {
				t.Errorf("book %d correlation %q, want %q", i, b.GetCover().GetCorrelationId(), cid[0])
			}
			domains[b.GetCover().GetDomain()] = true
		}
		if !domains["order"] || !domains["audit"] {
			t.Errorf("books from %v, want the command's (order) and the caused one (audit)", domains)
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("after count: %v, want EOF", err)
		}
	})

	t.Run("time, with the client's correlation id", func(t *testing.T) {
		cmd := command(t, "update")
		cmd.Cover.CorrelationId = "corr-" + uuid.NewString()
		// The stream follows the workflow for its duration, then ends: both
		// books (the command's and the one it caused) must arrive within it.
		// Long enough that a loaded machine (a -race run beside others)
		// still delivers both; the test waits all of it.
		const duration = 2 * time.Second
		start := time.Now()
		stream, err := gw.ExecuteStreamResponseTime(ctx, &pb.ExecuteStreamTimeRequest{Command: cmd, Duration: durationpb.New(duration)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			b, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.GetCover().GetCorrelationId() != cmd.Cover.CorrelationId {
				t.Errorf("correlation %q", b.GetCover().GetCorrelationId())
			}
			n++
		}
		if n != 2 {
			t.Errorf("%d books, want 2", n)
		}
		if time.Since(start) < duration {
			t.Errorf("stream ended after %v, before its duration", time.Since(start))
		}
	})

	t.Run("until the client leaves", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		stream, err := gw.ExecuteStream(cctx, command(t, "watch"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		ccancel()
		if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
			t.Fatalf("after cancel: %v", err)
		}
	})

	t.Run("rejection passes through", func(t *testing.T) {
		stream, err := gw.ExecuteStream(ctx, command(t, "reject"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "rejected by the business logic" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for name, call := range map[string]func() error{
			"count 0": func() error {
				s, err := gw.ExecuteStreamResponseCount(ctx, &pb.ExecuteStreamCountRequest{Command: command(t, "x")})
				if err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			},
			"no duration": func() error {
				s, err := gw.ExecuteStreamResponseTime(ctx, &pb.ExecuteStreamTimeRequest{Command: command(t, "x")})
				if err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			},
			"no domain": func() error {
				s, err := gw.ExecuteStream(ctx, &pb.CommandBook{})
				if err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			},
		} {
			if err := call(); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
			}
		}
		cmd := command(t, "x")
		cmd.Cover.Domain = "nowhere"
		s, err := gw.ExecuteStream(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); status.Code(err) != codes.NotFound {
			t.Errorf("unknown domain: %v, want NOT_FOUND", err)
		}
	})
}
