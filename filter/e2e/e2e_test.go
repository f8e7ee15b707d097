//go:build !wasip1

package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var wasmPath string

func TestMain(m *testing.M) { os.Exit(wasmbuild.Run(m, &wasmPath)) }

var profiles = []wasmhost.WASIProfile{wasmhost.WASIEnvoy133, wasmhost.WASIEnvoyCurrent}

func newRoot(t testing.TB) []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

func command(root []byte, seq uint32, deltas ...int64) *pb.CommandBook {
	cb := &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}}}
	for _, d := range deltas {
		cb.Pages = append(cb.Pages, counter.Command(d, seq))
	}
	return cb
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stored returns all stored pages of a counter aggregate, in order.
func stored(t testing.TB, s *Stack, root []byte) []*pb.EventPage {
	t.Helper()
	books, err := s.Events(ctxT(t), counter.Domain, root)
	if err != nil {
		t.Fatalf("EventQuery: %v", err)
	}
	var pages []*pb.EventPage
	for _, b := range books {
		pages = append(pages, b.GetPages()...)
	}
	return pages
}

func sum(t testing.TB, pages []*pb.EventPage) int64 {
	v, err := counter.State(&pb.EventBook{Pages: pages})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t testing.TB, err error, c codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != c {
		t.Fatalf("got %v, want %v", err, c)
	}
	return st
}

// TestCommandPath runs the whole command path on each proxy: wasmhost
// under both WASI profiles, and a real Envoy fed by the control plane
// (EachLane: without ENVOY_BIN that lane says it was skipped).
func TestCommandPath(t *testing.T) {
	EachLane(t, wasmPath, func(t *testing.T, lane Lane) {
		if lane == LaneEnvoy {
			commandPath(t, Start(t, Options{Lane: LaneEnvoy, Filter: wasmPath}), lane)
			return
		}
		for _, prof := range profiles {
			t.Run(string(prof), func(t *testing.T) {
				commandPath(t, Start(t, Options{Profile: prof, Filter: wasmPath, Config: config.Config{MaxRetries: 64,
					EventTypes: map[string][]string{counter.Domain: {counter.EventType}}}}), lane)
			})
		}
	})
}

// commandPath is TestCommandPath on one running stack.
func commandPath(t *testing.T, s *Stack, lane Lane) {
	cl := s.Coordinator()

	t.Run("create, update, read back", func(t *testing.T) {
		root := newRoot(t)
		var hdr metadata.MD
		resp, err := cl.Handle(ctxT(t), command(root, 0, 5), grpc.Header(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		cid := hdr.Get("x-angzarr-correlation-id")
		if len(cid) != 1 || len(cid[0]) != 36 {
			t.Fatalf("correlation header %v", hdr)
		}
		if p := resp.GetEvents().GetPages(); len(p) != 1 || p[0].GetNum() != 0 || p[0].GetCreatedAt() == nil {
			t.Fatalf("response %v", resp)
		}
		withCorr := command(root, 1, 2, 3)
		withCorr.Cover.CorrelationId = "flow-1"
		resp, err = cl.Handle(ctxT(t), withCorr)
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.GetEvents().GetPages(); len(p) != 2 || p[1].GetNum() != 2 {
			t.Fatalf("response %v", resp)
		}
		pages := stored(t, s, root)
		if len(pages) != 3 || sum(t, pages) != 10 {
			t.Fatalf("stored %v", pages)
		}
		for i, p := range pages {
			if p.GetNum() != uint32(i) {
				t.Fatalf("page %d has sequence %d", i, p.GetNum())
			}
		}
		// Every stored event carries its command's correlation id.
		for id, want := range map[string]int{cid[0]: 1, "flow-1": 2} {
			books, err := s.ByCorrelation(ctxT(t), id)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, b := range books {
				n += len(b.GetPages())
			}
			if n != want {
				t.Fatalf("correlation %s: %d events stored, want %d", id, n, want)
			}
		}
	})

	t.Run("HandleSync NONE and Record", func(t *testing.T) {
		root := newRoot(t)
		if _, err := cl.HandleSync(ctxT(t), &pb.SyncCommandBook{Command: command(root, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		// SIMPLE without synchronous projectors configured: the events.
		sr, err := cl.HandleSync(ctxT(t), &pb.SyncCommandBook{Command: command(root, 1, 1), SyncMode: pb.SyncMode_SYNC_MODE_SIMPLE})
		if err != nil || len(sr.GetEvents().GetPages()) != 1 || len(sr.GetProjections()) != 0 {
			t.Fatalf("SIMPLE: %v %v", sr, err)
		}
		resp, err := cl.Record(ctxT(t), &pb.EventBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}},
			Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 2}, Event: counter.Event(40).Event}}})
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.GetEvents().GetPages(); len(p) != 1 || p[0].GetNum() != 2 {
			t.Fatalf("record answered %v", resp)
		}
		if pages := stored(t, s, root); len(pages) != 3 || sum(t, pages) != 42 {
			t.Fatalf("stored %v", pages)
		}
	})

	t.Run("32 concurrent auto_resequence commands", func(t *testing.T) {
		root := newRoot(t)
		const n = 32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		seqs := make(chan uint32, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := command(root, 0, 1)
				c.AutoResequence = true
				resp, err := cl.Handle(ctxT(t), c)
				if err != nil {
					errs <- err
					return
				}
				seqs <- resp.GetEvents().GetPages()[0].GetNum()
			}()
		}
		wg.Wait()
		close(errs)
		close(seqs)
		for err := range errs {
			t.Errorf("command failed: %v", err)
		}
		var got []int
		for q := range seqs {
			got = append(got, int(q))
		}
		sort.Ints(got)
		for i, q := range got {
			if q != i {
				t.Fatalf("answered sequences %v, want 0..%d", got, n-1)
			}
		}
		pages := stored(t, s, root)
		if len(pages) != n || sum(t, pages) != n {
			t.Fatalf("stored %d pages, state %d", len(pages), sum(t, pages))
		}
		for i, p := range pages {
			if p.GetNum() != uint32(i) {
				t.Fatalf("stored page %d has sequence %d", i, p.GetNum())
			}
		}
	})

	t.Run("stale expected sequence is ABORTED", func(t *testing.T) {
		root := newRoot(t)
		if _, err := cl.Handle(ctxT(t), command(root, 0, 1)); err != nil {
			t.Fatal(err)
		}
		_, err := cl.Handle(ctxT(t), command(root, 0, 1))
		st := wantCode(t, err, codes.Aborted)
		var conflict *pb.SequenceConflict
		for _, d := range st.Details() {
			if c, ok := d.(*pb.SequenceConflict); ok {
				conflict = c
			}
		}
		if conflict == nil || conflict.GetNextSequence() != 1 || conflict.GetExpectedSequence() != 0 {
			t.Fatalf("detail %v (%v)", st.Details(), st.Message())
		}
		if pages := stored(t, s, root); len(pages) != 1 {
			t.Fatalf("stored %d pages", len(pages))
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		root := newRoot(t)
		c := command(root, 0, 7)
		c.IdempotencyKey = "once"
		first, err := cl.Handle(ctxT(t), c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := cl.Handle(ctxT(t), c)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.GetEvents().GetPages()) != 1 || again.GetEvents().GetPages()[0].GetNum() != first.GetEvents().GetPages()[0].GetNum() {
			t.Fatalf("repeat answered %v, first %v", again, first)
		}
		if pages := stored(t, s, root); len(pages) != 1 {
			t.Fatalf("stored %d pages", len(pages))
		}
	})

	t.Run("business rejection", func(t *testing.T) {
		root := newRoot(t)
		_, err := cl.Handle(ctxT(t), command(root, 0, -1))
		if st, _ := status.FromError(err); st.Code() == codes.Internal && strings.Contains(st.Message(), "without sending trailers") {
			t.Fatalf("%v: the proxy did not relay the logic's trailers-only error response "+
				"(wasmhost/proxy.go treats only http.NoBody as end of stream, but Go's HTTP/2 transport never returns it)", err)
		}
		st := wantCode(t, err, codes.FailedPrecondition)
		if st.Message() != "counter: 0-1 would go below zero" {
			t.Fatalf("message changed: %q", st.Message())
		}
		if pages := stored(t, s, root); len(pages) != 0 {
			t.Fatalf("stored %d pages", len(pages))
		}
	})

	t.Run("invalid and denied", func(t *testing.T) {
		c := command(newRoot(t), 0, 1)
		c.Cover.Domain = "order"
		_, err := cl.Handle(ctxT(t), c)
		wantCode(t, err, codes.InvalidArgument)
		_, err = cl.Handle(ctxT(t), command([]byte{1, 2}, 0, 1))
		wantCode(t, err, codes.InvalidArgument)
		_, err = s.LogicThroughProxy().Handle(ctxT(t), &pb.ContextualCommand{Command: command(newRoot(t), 0, 1)})
		wantCode(t, err, codes.PermissionDenied)
	})

	t.Run("metrics", func(t *testing.T) {
		if lane == LaneEnvoy {
			t.Skip("wasmhost's admin endpoint; Envoy's /stats carry the filter's metrics under Envoy's stat naming, not checked here")
		}
		m := s.Metrics(t)
		for _, name := range []string{"angzarr_commands_counter_ok", "angzarr_commands_counter_aborted",
			"angzarr_commands_counter_invalid", "angzarr_commands_unknown_denied", "angzarr_commands_counter_duplicate",
			"angzarr_conflicts_counter", "angzarr_retries_counter", "angzarr_command_latency_us_counter_count"} {
			if m[name] <= 0 {
				t.Errorf("metric %s = %v", name, m[name])
			}
		}
	})

	t.Run("event service down", func(t *testing.T) {
		root := newRoot(t)
		if _, err := cl.Handle(ctxT(t), command(root, 0, 1)); err != nil {
			t.Fatal(err)
		}
		s.StopEventService()
		_, err := cl.Handle(ctxT(t), command(root, 1, 1))
		wantCode(t, err, codes.Unavailable)
		s.RestartEventService()
		if pages := stored(t, s, root); len(pages) != 1 {
			t.Fatalf("stored %d pages after the outage", len(pages))
		}
		if _, err := cl.Handle(ctxT(t), command(root, 1, 1)); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	})
}

// TestManyCommands drives many commands through one VM under Envoy 1.33's
// WASI (poll_oneoff answers ENOSYS): the Go runtime inside the module must
// survive GC cycles without idling. E2E_COMMANDS overrides the count.
func TestManyCommands(t *testing.T) {
	n := 10000
	if raceEnabled || testing.Short() {
		// Under -race the interpreter is ~15x slower; the full run is the
		// separate non-race `go test -run TestManyCommands ./filter/e2e`.
		n = 1000
		t.Logf("race detector or -short: %d commands (run without -race for 10,000)", n)
	}
	if v := os.Getenv("E2E_COMMANDS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("E2E_COMMANDS: %v", err)
		}
	}
	s := Start(t, Options{Profile: wasmhost.WASIEnvoy133, Filter: wasmPath, VMs: 1})
	cl := s.Coordinator()
	const clients = 8
	roots := make([][]byte, clients)
	for i := range roots {
		roots[i] = newRoot(t)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := c; i < n; i += clients {
				seq := uint32(i / clients)
				if _, err := cl.Handle(ctxT(t), command(roots[c], seq, 1)); err != nil {
					errs <- fmt.Errorf("command %d: %w", i, err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d commands in %v (%.0f/s)", n, time.Since(start), float64(n)/time.Since(start).Seconds())
	total := 0
	for _, r := range roots {
		total += len(stored(t, s, r))
	}
	if total != n {
		t.Fatalf("stored %d events, want %d", total, n)
	}
	m := s.Metrics(t)
	if m["angzarr_commands_counter_ok"] != float64(n) {
		t.Fatalf("angzarr_commands_counter_ok = %v, want %d", m["angzarr_commands_counter_ok"], n)
	}
	t.Logf("filter heap: live %.0f KiB, runtime memory %.0f KiB",
		m["angzarr_filter_heap_live_bytes"]/1024, m["angzarr_filter_runtime_memory_bytes"]/1024)
}

// TestBadConfiguration: the proxy refuses a plugin configuration the filter
// rejects (proxy_on_configure fails), with one clear log line.
func TestBadConfiguration(t *testing.T) {
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_, err := wasmhost.New(context.Background(), wasmhost.Config{
		FilterPath:  wasmPath,
		Plugin:      wasmhost.Plugin{Configuration: []byte(`{"domain":"counter","max_retries":-1}`)},
		Upstream:    "127.0.0.1:1",
		WASIProfile: wasmhost.WASIEnvoy133,
		VMs:         1,
		Logger:      logger,
	})
	if !errors.Is(err, wasmhost.ErrConfigureFailed) {
		t.Fatalf("got %v, want ErrConfigureFailed", err)
	}
	n := strings.Count(logs.String(), "angzarr filter: bad configuration")
	if n != 1 || !strings.Contains(logs.String(), `unknown field \"domain\"`) {
		t.Fatalf("want one clear log line, got %d in:\n%s", n, logs.String())
	}
}
