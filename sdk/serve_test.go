package sdk_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs sdk.Serve for handler on 127.0.0.1:0 and returns a connection
// that answered health SERVING, and a stop func returning Serve's result.
func serve(t *testing.T, handler any) (*grpc.ClientConn, func() error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sdk.Serve(ctx, lis, handler) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel()
	resp, err := healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
	return conn, stop
}

func TestServeBusinessLogic(t *testing.T) {
	conn, stop := serve(t, points())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "angzarr.BusinessLogic"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of the service: %v %v", resp, err)
	}

	book := sdktest.Book(t, "points", sdktest.Root, 0)
	got, err := angzarr.NewBusinessLogicClient(conn).Handle(ctx, &angzarr.ContextualCommand{
		Events:  book,
		Command: &angzarr.CommandBook{Cover: book.Cover, Pages: []*angzarr.CommandPage{{Command: sdktest.Pack(t, &examples.AddLoyaltyPoints{Points: 4})}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Equal(t, got.GetPages(), msgs{added(4, 4)})

	// Reflection lists the service.
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	listed, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range listed.GetListServicesResponse().GetService() {
		found = found || s.GetName() == "angzarr.BusinessLogic"
	}
	if !found {
		t.Fatalf("reflection lists %v", listed.GetListServicesResponse().GetService())
	}
	_ = stream.CloseSend()

	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestServeSaga(t *testing.T) {
	s := sdk.NewSaga("echo")
	sdk.React(s, func(src *angzarr.Cover, e *examples.LoyaltyPointsAdded) ([]*angzarr.CommandBook, error) {
		cmd, err := sdk.Command("other", sdktest.Root, src.GetCorrelationId(), &examples.AddLoyaltyPoints{Points: e.Points})
		return []*angzarr.CommandBook{cmd}, err
	})
	conn, _ := serve(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := angzarr.NewSagaClient(conn).HandleSync(ctx, sdktest.Book(t, "points", sdktest.Root, 0, added(2, 2), &examples.CustomerCreated{}, added(3, 5)))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetCommands()) != 2 {
		t.Fatalf("commands: %v", resp)
	}
	c := resp.GetCommands()[1]
	if c.GetCover().GetDomain() != "other" || c.GetCover().GetCorrelationId() != sdktest.CorrelationID || c.GetSagaOrigin() != nil || c.GetAutoResequence() {
		t.Fatalf("command %v", c)
	}
	sdktestEqualCommand(t, c, &examples.AddLoyaltyPoints{Points: 3})
}

func sdktestEqualCommand(t *testing.T, c *angzarr.CommandBook, want *examples.AddLoyaltyPoints) {
	t.Helper()
	got := &examples.AddLoyaltyPoints{}
	if err := c.GetPages()[0].GetCommand().UnmarshalTo(got); err != nil || got.Points != want.Points {
		t.Fatalf("command %v (%v), want %v", got, err, want)
	}
}

type projector struct {
	angzarr.UnimplementedProjectorServer
}

func (projector) HandleSync(_ context.Context, b *angzarr.EventBook) (*angzarr.Projection, error) {
	return &angzarr.Projection{Cover: b.GetCover(), Projector: "p", Sequence: sdk.NextSequence(b) - 1}, nil
}

func TestServeProjector(t *testing.T) {
	conn, _ := serve(t, projector{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := angzarr.NewProjectorClient(conn).HandleSync(ctx, sdktest.Book(t, "points", sdktest.Root, 0, added(1, 1), added(1, 2)))
	if err != nil || p.GetSequence() != 1 {
		t.Fatalf("projection %v, %v", p, err)
	}
}

func TestServeRefusesUnknownHandlers(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sdk.Serve(context.Background(), lis, struct{}{}); !errors.Is(err, sdk.ErrUnknownHandler) {
		t.Fatalf("got %v", err)
	}
}
