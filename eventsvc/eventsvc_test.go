package eventsvc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/server"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// angzarrBin is the CLI built by TestMain for the subprocess tests.
var angzarrBin string

func TestMain(m *testing.M) { os.Exit(eventsvctest.RunWithBinary(m, &angzarrBin)) }

// backends returns a store URL per backend kind, each on a fresh store.
func backends(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "events.db") },
		"redis":  func(t *testing.T) string { return "redis://" + testredis.Start(t) + "/0" },
		"redis-cluster": func(t *testing.T) string {
			return "redis+cluster://" + strings.Join(testredis.StartCluster(t, 3), ",")
		},
	}
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func cover(domain string, root uuid.UUID, cid string) *pb.Cover {
	return &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}, CorrelationId: cid}
}

func TestGRPC(t *testing.T) {
	for name, newURL := range backends(t) {
		t.Run(name, func(t *testing.T) {
			conn := eventsvctest.Dial(t, eventsvctest.Start(t, newURL(t)))
			es, eq := pb.NewEventStoreClient(conn), pb.NewEventQueryClient(conn)
			ctx := tctx(t)
			domain, root := storetest.Domain(t), uuid.New()

			// Append, then load.
			resp, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, "c1"), Pages: storetest.Pages(0, 3, "a"), IdempotencyKey: "k"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetNextSequence() != 3 || len(resp.GetBook().GetPages()) != 3 || resp.GetBook().GetCover().GetCorrelationId() != "c1" || resp.GetPosition() == nil {
				t.Fatalf("append response %v", resp)
			}
			load, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, ""), IdempotencyKey: "k"})
			if err != nil {
				t.Fatal(err)
			}
			if load.GetNextSequence() != 3 || len(load.GetBook().GetPages()) != 3 || !load.GetPrior().GetDuplicate() || load.GetPrior().GetNextSequence() != 3 {
				t.Fatalf("load %v", load)
			}
			// A delayed load (a conflict's back-off) loads the same; a
			// delay beyond the maximum is refused, naming the field; the
			// call's deadline ends the wait.
			delayed, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, ""), DelayMs: 2})
			if err != nil || delayed.GetNextSequence() != 3 || len(delayed.GetBook().GetPages()) != 3 {
				t.Fatalf("delayed load: %v, %v", delayed, err)
			}
			if _, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, ""), DelayMs: server.MaxLoadDelayMs + 1}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "delay_ms: at most 1000") {
				t.Fatalf("load with too long a delay: %v", err)
			}
			short, cancel := context.WithTimeout(ctx, time.Millisecond)
			_, err = es.Load(short, &pb.LoadRequest{Cover: cover(domain, root, ""), DelayMs: server.MaxLoadDelayMs})
			cancel()
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("delayed load past its deadline: %v", err)
			}

			// The idempotent repeat.
			again, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, "c1"), Pages: storetest.Pages(0, 3, "a"), IdempotencyKey: "k"})
			if err != nil || !again.GetDuplicate() || !proto.Equal(again.GetBook().GetPages()[2], resp.GetBook().GetPages()[2]) {
				t.Fatalf("repeat: %v %v", again, err)
			}

			// Conflict: ABORTED, next sequence in message and detail.
			_, err = es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, ""), ExpectedSequence: 1, Pages: storetest.Pages(1, 1, "x")})
			if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "next sequence is 3") {
				t.Fatalf("conflict: %v", err)
			}
			if c := server.ConflictFromStatus(err); c.GetNextSequence() != 3 || c.GetExpectedSequence() != 1 || c.GetCover().GetDomain() != domain {
				t.Fatalf("conflict detail %v", c)
			}
			var ce *store.ConflictError
			if !errors.As(server.ErrorFromStatus(err), &ce) || ce.Next != 3 || ce.Aggregate != (store.Aggregate{Domain: domain, Root: root}) {
				t.Fatalf("conflict mapped back: %v", server.ErrorFromStatus(err))
			}

			// Invalid input names the field.
			for _, tc := range []struct {
				req   *pb.AppendRequest
				field string
			}{
				{&pb.AppendRequest{Pages: storetest.Pages(0, 1, "a")}, "cover"},
				{&pb.AppendRequest{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: []byte{1}}}, Pages: storetest.Pages(0, 1, "a")}, "cover.root"},
				{&pb.AppendRequest{Cover: cover("bad domain", root, ""), Pages: storetest.Pages(0, 1, "a")}, "cover.domain"},
				{&pb.AppendRequest{Cover: cover(domain, root, ""), ExpectedSequence: 3, Pages: storetest.Pages(4, 1, "a")}, "pages[0].num"},
				{&pb.AppendRequest{Cover: cover(domain, root, ""), ExpectedSequence: 3, Pages: storetest.Pages(3, 1001, "a")}, "pages"},
			} {
				_, err := es.Append(ctx, tc.req)
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field+":") {
					t.Errorf("want INVALID_ARGUMENT naming %s, got %v", tc.field, err)
				}
				var ie *store.InvalidError
				if !errors.As(server.ErrorFromStatus(err), &ie) || ie.Field != tc.field {
					t.Errorf("invalid %s mapped back to %v", tc.field, server.ErrorFromStatus(err))
				}
			}

			// Second aggregate in the same workflow, then queries.
			other := uuid.New()
			if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, other, "c1"), Pages: storetest.Pages(0, 2, "b")}); err != nil {
				t.Fatal(err)
			}
			got := collect(t, eq, &pb.Query{Cover: cover(domain, root, ""), Selection: &pb.Query_Range{Range: &pb.SequenceRange{Lower: 1}}})
			if want := "a-1 a-2"; got != want {
				t.Errorf("range: %q, want %q", got, want)
			}
			got = collect(t, eq, &pb.Query{Cover: cover(domain, root, ""), Selection: &pb.Query_Sequences{Sequences: &pb.SequenceSet{Values: []uint32{2, 0}}}})
			if want := "a-0 a-2"; got != want {
				t.Errorf("set: %q, want %q", got, want)
			}
			got = collect(t, eq, &pb.Query{Cover: cover(domain, root, ""), Selection: &pb.Query_Temporal{Temporal: &pb.TemporalQuery{PointInTime: &pb.TemporalQuery_AsOfSequence{AsOfSequence: 1}}}})
			if want := "a-0 a-1"; got != want {
				t.Errorf("as of sequence: %q, want %q", got, want)
			}
			got = collect(t, eq, &pb.Query{Cover: &pb.Cover{CorrelationId: "c1"}})
			if want := "a-0 a-1 a-2 b-0 b-1"; got != want {
				t.Errorf("by correlation: %q, want %q", got, want)
			}
			if got := collect(t, eq, &pb.Query{Cover: &pb.Cover{Domain: domain}}); len(strings.Fields(got)) != 5 {
				t.Errorf("whole domain: %q", got)
			}
			stream, err := eq.GetAggregateRoots(ctx, &emptypb.Empty{})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range testutil.Collect(t, stream) {
				if r.GetDomain() == domain {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%d roots in %s, want 2", n, domain)
			}
			lr, err := es.ListRoots(ctx, &pb.ListRootsRequest{Domain: domain})
			if err != nil {
				t.Fatal(err)
			}
			n = 0
			for _, r := range testutil.Collect(t, lr) {
				if r.GetDomain() != domain {
					t.Fatalf("ListRoots(%s) returned %v", domain, r)
				}
				n++
			}
			if n != 2 {
				t.Errorf("ListRoots: %d roots in %s, want 2", n, domain)
			}
			log, err := es.ReadLog(ctx, &pb.ReadLogRequest{Domain: domain, Partition: resp.GetPosition().GetPartition()})
			if err != nil || len(log.GetBooks()) == 0 || log.GetPartitions() == 0 {
				t.Fatalf("read log: %v %v", log, err)
			}
			if _, err := es.ReadLog(ctx, &pb.ReadLogRequest{Domain: domain, Partition: 5000}); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("read log partition 5000: %v", err)
			}
			// A Synchronize with an upper bound ends once it is reached.
			sync, err := eq.Synchronize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			upper := uint32(2)
			if err := sync.Send(&pb.Query{Cover: cover(domain, root, ""), Selection: &pb.Query_Range{Range: &pb.SequenceRange{Lower: 1, Upper: &upper}}}); err != nil {
				t.Fatal(err)
			}
			var synced []string
			for _, b := range testutil.Collect(t, sync) {
				for _, p := range b.GetPages() {
					synced = append(synced, storetest.Text(t, p))
				}
			}
			if got := strings.Join(synced, " "); got != "a-1 a-2" {
				t.Errorf("bounded Synchronize: %q, want %q", got, "a-1 a-2")
			}

			// Errors of server streams arrive on Recv.
			s, err := eq.GetEvents(ctx, &pb.Query{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "cover:") {
				t.Fatalf("query without cover: %v", err)
			}
		})
	}
}

// collect runs GetEvents and returns the payload texts, space separated.
func collect(t *testing.T, eq pb.EventQueryClient, q *pb.Query) string {
	t.Helper()
	stream, err := eq.GetEvents(tctx(t), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range testutil.Collect(t, stream) {
		for _, p := range b.GetPages() {
			out = append(out, storetest.Text(t, p))
		}
	}
	return strings.Join(out, " ")
}

func TestHealthReflectionAndMetrics(t *testing.T) {
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A listener taken by the caller (angzarr dev); MetricsListen is
	// covered by the telemetry tests.
	metricsAddr := ml.Addr().String()
	addr := eventsvctest.StartConfig(t, eventsvc.Config{Store: "sqlite:" + filepath.Join(t.TempDir(), "e.db"), MetricsListener: ml})
	conn := eventsvctest.Dial(t, addr)

	// Reflection lists the services (what grpcurl uses).
	rc, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"angzarr.EventQuery", "angzarr.EventStore", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	// grpcurl resolves a service's file and its imports.
	if err := rc.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "angzarr.EventStore"}}); err != nil {
		t.Fatal(err)
	}
	if resp, err = rc.Recv(); err != nil {
		t.Fatal(err)
	}
	files := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
	if len(files) < 2 {
		t.Fatalf("reflection returned %d files for angzarr.EventStore: %v", len(files), resp.GetErrorResponse())
	}
	rc.CloseSend()

	// One append shows up in the metrics.
	if _, err := pb.NewEventStoreClient(conn).Append(tctx(t), &pb.AppendRequest{Cover: cover("metrics", uuid.New(), ""), Pages: storetest.Pages(0, 1, "m")}); err != nil {
		t.Fatal(err)
	}
	hresp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if !strings.Contains(string(body), `angzarr_eventsvc_appends_total{`) || !strings.Contains(string(body), `outcome="ok"`) {
		t.Fatalf("metrics lack the append counter:\n%s", body)
	}
}

func TestStoreDownIsUnavailable(t *testing.T) {
	srv := testredis.StartServer(t, testredis.Options{})
	conn := eventsvctest.Dial(t, eventsvctest.Start(t, "redis://"+srv.Addr()+"/0"))
	es := pb.NewEventStoreClient(conn)
	srv.Kill()
	_, err := es.Append(tctx(t), &pb.AppendRequest{Cover: cover("down", uuid.New(), ""), Pages: storetest.Pages(0, 1, "a")})
	if status.Code(err) != codes.Unavailable || !errors.Is(server.ErrorFromStatus(err), store.ErrUnavailable) {
		t.Fatalf("append with redis down: %v", err)
	}
	_, err = es.Load(tctx(t), &pb.LoadRequest{Cover: cover("down", uuid.New(), "")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("load with redis down: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := eventsvc.Config{Store: "mongodb://x", Listen: "nope", MetricsListen: "also nope", PollInterval: -1}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"unknown scheme", "listen", "metrics listen", "poll interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if err := (eventsvc.Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "store: required") {
		t.Errorf("empty config: %v", err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Close()
	err = eventsvc.Config{Store: "sqlite:x.db", MetricsListen: "127.0.0.1:0", MetricsListener: ml}.Validate()
	if err == nil || !strings.Contains(err.Error(), "an address and a listener are both set") {
		t.Errorf("metrics address and listener: %v", err)
	}
}

func TestParseStoreURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // fmt of the parsed URL, or "error"
	}{
		{"sqlite:./e.db", "sqlite ./e.db [] 0"},
		{"sqlite:///abs/e.db", "sqlite /abs/e.db [] 0"},
		{"redis://127.0.0.1:6379/2", "redis  [127.0.0.1:6379] 2"},
		{"redis://127.0.0.1:6379", "redis  [127.0.0.1:6379] 0"},
		{"redis+cluster://a:1,b:2,c:3", "redis+cluster  [a:1 b:2 c:3] 0"},
		{"redis://a:1,b:2/0", "error"},
		{"redis://a/0", "error"},
		{"redis://a:1/x", "error"},
		{"redis+cluster://a:1/3", "error"},
		{"sqlite:", "error"},
		{"postgres://x", "error"},
	} {
		u, err := eventsvc.ParseStoreURL(tc.in)
		got := "error"
		if err == nil {
			got = fmt.Sprint(u.Kind, " ", u.Path, " ", u.Addrs, " ", u.DB)
		}
		if got != tc.want {
			t.Errorf("%s: got %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
	u, err := eventsvc.ParseStoreURL("redis://user:p%40ss@h:1/0")
	if err != nil || u.Username != "user" || u.Password != "p@ss" {
		t.Errorf("credentials: %+v %v", u, err)
	}
	u, err = eventsvc.ParseStoreURL("redis+cluster://a:1,b:2?min-replicas=1&replica-timeout=250ms")
	if err != nil || u.MinReplicas != 1 || u.ReplicaTimeout != 250*time.Millisecond || len(u.Addrs) != 2 {
		t.Errorf("replica parameters: %+v %v", u, err)
	}
	for _, bad := range []string{"redis://a:1?min-replicas=-1", "redis://a:1?replica-timeout=x", "redis://a:1?replicas=1"} {
		if _, err := eventsvc.ParseStoreURL(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestGracefulStopEndsSubscriptions: a Serve with an open Synchronize
// stream returns promptly when its context ends.
func TestGracefulStopEndsSubscriptions(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- eventsvc.Serve(ctx, lis, eventsvc.Config{Store: "sqlite:" + filepath.Join(t.TempDir(), "e.db"), ShutdownTimeout: time.Minute})
	}()
	if err := eventsvctest.WaitReady(lis.Addr().String(), 30*time.Second, done); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sync, err := pb.NewEventQueryClient(conn).Synchronize(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := sync.Send(&pb.Query{Cover: &pb.Cover{Domain: "stop"}}); err != nil {
		t.Fatal(err)
	}
	// The subscription is open once an append through the service reaches it.
	es := pb.NewEventStoreClient(conn)
	if _, err := es.Append(tctx(t), &pb.AppendRequest{Cover: cover("stop", uuid.New(), ""), Pages: storetest.Pages(0, 1, "s")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sync.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Ended by the server's Shutdown, not cut by the shutdown timeout.
	if _, err := sync.Recv(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("subscription after stop: %v", err)
	}
}
