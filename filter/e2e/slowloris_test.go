//go:build !wasip1

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// startThreadedLogic serves the counter logic the way a thread-pool gRPC
// server does (grpc-python's with max_workers=slots): a worker is taken
// when a call arrives (its headers) and held while the call reads its
// request. arrivals counts the calls that arrived.
func startThreadedLogic(t *testing.T, slots int) (addr string, arrivals *atomic.Int64) {
	t.Helper()
	arrivals = new(atomic.Int64)
	workers := make(chan struct{}, slots)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		arrivals.Add(1)
		select {
		case workers <- struct{}{}:
		case <-st.Context().Done():
			return st.Context().Err()
		}
		defer func() { <-workers }()
		if m, _ := grpc.MethodFromServerStream(st); m != "/angzarr.BusinessLogic/Handle" {
			return status.Errorf(codes.Unimplemented, "%s", m)
		}
		cc := &pb.ContextualCommand{}
		if err := st.RecvMsg(cc); err != nil {
			return err
		}
		book, err := counter.Decide(cc, 0)
		if err != nil {
			return err
		}
		return st.SendMsg(book)
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), arrivals
}

// TestSlowlorisLeavesOtherCommandsWorking: 64 commands whose bodies never
// finish, held open, while other commands through the same proxy go on,
// against a logic with 8 workers. The filter holds a command's request
// headers (hold_request_headers, with the host's
// allow_on_headers_stop_iteration) until the command was processed, so
// the stalled ones never reach the logic. (Letting the headers go at once,
// as before, the 64 took all 8 workers and every other command timed out.)
func TestSlowlorisLeavesOtherCommandsWorking(t *testing.T) {
	const stalled, slots, good = 64, 8, 16
	s := Start(t, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath})
	logic, arrivals := startThreadedLogic(t, slots)
	if err := s.Host.SetUpstream(logic); err != nil {
		t.Fatal(err)
	}
	module, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(config.Config{Domains: []string{counter.Domain}, EventServiceCluster: "angzarr-eventsvc",
		BusinessLogicCluster: "angzarr-logic", HoldRequestHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Host.UpdatePlugin(ctx, wasmhost.Plugin{Module: module, Configuration: raw, AllowOnHeadersStopIteration: true}); err != nil {
		t.Fatal(err)
	}

	// The attack: gRPC frames announcing 100 bytes, of which 5 come.
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	defer tr.CloseIdleConnections()
	for i := 0; i < stalled; i++ {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Proxy+"/angzarr.BusinessCoordinator/Handle", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		go func() { _, _ = pw.Write([]byte{0, 0, 0, 0, 100, 0x0a, 0x03, 'a', 'b', 'c'}) }()
		go func() {
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	// Every stalled stream is in the proxy before the other commands go.
	for s.Metrics(t)["wasmhost_active_streams"] < stalled {
		select {
		case <-ctx.Done():
			t.Fatalf("the %d stalled requests did not all reach the proxy", stalled)
		case <-time.After(10 * time.Millisecond):
		}
	}

	root := newRoot(t)
	for i := 0; i < good; i++ {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.Coordinator().Handle(cctx, &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}},
			Pages: []*pb.CommandPage{counter.Command(1, uint32(i))}})
		ccancel()
		if err != nil {
			t.Fatalf("command %d while %d requests stall: %v (calls that reached the logic: %d)", i, stalled, err, arrivals.Load())
		}
	}
	if n := arrivals.Load(); n != good {
		t.Fatalf("%d calls reached the logic, want the %d commands' own", n, good)
	}
}
