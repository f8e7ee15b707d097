package shop_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/customer/customertest"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

// python is Debian's interpreter, the one with grpcio and protobuf.
const python = "/usr/bin/python3"

// remoteLogic is a business logic served elsewhere, called over gRPC.
type remoteLogic struct {
	angzarr.UnimplementedBusinessLogicServer
	client angzarr.BusinessLogicClient
}

func (remoteLogic) Domain() string { return "customer" }

func (r remoteLogic) Handle(ctx context.Context, in *angzarr.ContextualCommand) (*angzarr.EventBook, error) {
	return r.client.Handle(ctx, in)
}

// TestPythonCustomerOverGRPC starts the Python customer server and drives
// it with Go's gRPC clients: health, a ContextualCommand, a rejection, and
// the Go customer's whole rule table (customertest.Cases).
func TestPythonCustomerOverGRPC(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s missing: run `make deps`", python)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "../../python/customer/server.py", "--listen", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// Readiness: the server prints its address once it serves.
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("server did not start: %q %v", line, err)
	}
	conn := dial(t, strings.TrimSpace(strings.TrimPrefix(line, "listening on ")))

	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "angzarr.BusinessLogic"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("health of an unknown service: %v", err)
	}

	client := angzarr.NewBusinessLogicClient(conn)
	got, err := client.Handle(ctx, contextual(t, "customer", &examples.CreateCustomer{Name: "Ann", Email: "a@x"}))
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Equal(t, got.GetPages(), []proto.Message{&examples.CustomerCreated{Name: "Ann", Email: "a@x"}})

	book := sdktest.Book(t, "customer", sdktest.Root, 0, &examples.CustomerCreated{Name: "Ann", Email: "a@x"})
	_, err = client.Handle(ctx, &angzarr.ContextualCommand{Events: book, Command: &angzarr.CommandBook{
		Cover: book.GetCover(),
		Pages: []*angzarr.CommandPage{{Sequence: 1, Command: sdktest.Pack(t, &examples.RedeemLoyaltyPoints{Points: 5})}},
	}})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "insufficient points") {
		t.Fatalf("want FAILED_PRECONDITION insufficient points, got %v", err)
	}

	// Every customer rule the Go customer is tested with.
	t.Run("rules", func(t *testing.T) { sdktest.Run(t, remoteLogic{client: client}, customertest.Cases()) })

	_ = conn.Close()
	stopped = true
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server exit after SIGTERM: %v", err)
	}
}
