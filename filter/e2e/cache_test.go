//go:build !wasip1

package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestAggregateCacheAcrossWorkers writes one aggregate through two
// connections, which wasmhost (like Envoy) serves on two workers, each VM
// with its own aggregate cache: each worker's cache goes stale when the
// other writes. Every answer must be what it would be without a cache, and
// every history the logic saw must be exactly what the event service
// stored.
func TestAggregateCacheAcrossWorkers(t *testing.T) {
	var mu sync.Mutex
	var seen []*pb.ContextualCommand
	logic := &counter.Service{Seen: func(_ context.Context, cc *pb.ContextualCommand) {
		mu.Lock()
		seen = append(seen, proto.Clone(cc).(*pb.ContextualCommand))
		mu.Unlock()
	}}
	logicCalls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	s := Start(t, Options{Profile: wasmhost.WASIEnvoy133, Filter: wasmPath, VMs: 2, Logic: logic})
	// The first connection accepted goes to worker 0, the second to worker
	// 1; each is used once before the other to fix the order.
	dialOne := func() pb.BusinessCoordinatorClient {
		conn, err := grpc.NewClient(s.Proxy, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return pb.NewBusinessCoordinatorClient(conn)
	}
	root := newRoot(t)
	send := func(cl pb.BusinessCoordinatorClient, seq uint32, delta int64) error {
		_, err := cl.Handle(ctxT(t), command(root, seq, delta))
		return err
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wantStatus := func(err error, c codes.Code, frag string) {
		t.Helper()
		if status.Code(err) != c || !strings.Contains(status.Convert(err).Message(), frag) {
			t.Fatalf("got %v, want %v with %q", err, c, frag)
		}
	}

	a := dialOne()
	must(send(a, 0, 1)) // worker 0 loads, caches
	b := dialOne()
	must(send(b, 1, 1)) // worker 1 loads, caches; worker 0's entry is stale
	must(send(a, 2, 1)) // worker 0: the command expects 2, its entry says 1: loads

	// Worker 1's entry says 2, the aggregate is at 3, and so is the client:
	// the logic decides on the stale history and the append is refused.
	calls := logicCalls()
	wantStatus(send(b, 2, 1), codes.Aborted, "the aggregate's next sequence is 3")
	if logicCalls() != calls+1 {
		t.Fatal("the stale command did not run on the cached history: the test does not exercise the cache")
	}

	// Worker 1 reloaded on the conflict; worker 0 writes again, so worker
	// 1 is stale once more. -100 goes below zero on the stale history (sum
	// 3) and on the real one (sum 4): a rejection on a stale history is
	// answered ABORTED all the same, because the client's sequence is stale.
	must(send(a, 3, 1))
	wantStatus(send(b, 3, -100), codes.Aborted, "the aggregate's next sequence is 4")
	// On a current history the rejection passes through.
	wantStatus(send(b, 4, -100), codes.FailedPrecondition, "would go below zero")
	must(send(b, 4, 1))
	must(send(b, 5, 1)) // a hit on worker 1

	pages := stored(t, s, root)
	if len(pages) != 6 {
		t.Fatalf("%d events stored, want 6", len(pages))
	}
	for i, p := range pages {
		if p.GetNum() != uint32(i) {
			t.Fatalf("event %d has sequence %d", i, p.GetNum())
		}
	}
	// Whatever the history came from, cache or load, it is a prefix of what
	// the event service stored, byte for byte (created_at included).
	mu.Lock()
	defer mu.Unlock()
	for i, cc := range seen {
		got := cc.GetEvents().GetPages()
		if len(got) > len(pages) {
			t.Fatalf("call %d: history of %d events, only %d stored", i, len(got), len(pages))
		}
		for j := range got {
			if !proto.Equal(got[j], pages[j]) {
				t.Fatalf("call %d, event %d: logic saw %v, stored %v", i, j, got[j], pages[j])
			}
		}
		if cc.GetEvents().GetCover().GetCorrelationId() != cc.GetCommand().GetCover().GetCorrelationId() {
			t.Fatalf("call %d: history cover %v, command cover %v", i, cc.GetEvents().GetCover(), cc.GetCommand().GetCover())
		}
	}
}
