//go:build !wasip1

package filter

import (
	"context"
	"slices"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/internal/wasmdrive"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/protobuf/proto"
)

// TestTwoPluginsShareAVM: in Envoy several plugins with the same vm_id and
// code (a gateway's per-domain filters) share one VM per worker, each with
// its own root context and configuration. Two roots of one instance of the
// built module keep their configurations apart (each stream calls its own
// root's event service cluster), and a callout's answer delivered on a
// root reaches that root's stream only: on the other root it is dropped.
func TestTwoPluginsShareAVM(t *testing.T) {
	const rootB = wasmdrive.RootID + 1
	h := newFakeHost()
	g, err := compiledFilter(t).Start(context.Background(), wasmHost{h}, []byte(`{"domains":["counter"],"event_service_cluster":"es-a"}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.AddRoot(rootB, []byte(`{"domains":["counter"],"event_service_cluster":"es-b"}`)); err != nil {
		t.Fatal(err)
	}
	start := func(id, root uint32) *fakeCall {
		t.Helper()
		body := frame(t, cmd(1, 0, 1))
		fs := h.stream(id)
		h.current = id
		fs.maps[RequestHeaders] = map[string]string{":path": PathHandle, ":method": "POST", "content-type": "application/grpc"}
		if err := g.NewStreamIn(id, root); err != nil {
			t.Fatal(err)
		}
		if _, err := g.OnRequestHeaders(id, len(fs.maps[RequestHeaders]), false); err != nil {
			t.Fatal(err)
		}
		fs.bufs[RequestBody] = body
		if _, err := g.OnRequestBody(id, len(body), true); err != nil {
			t.Fatal(err)
		}
		c := h.calls[len(h.calls)-1]
		if c.stream != id || c.method != "Load" {
			t.Fatalf("stream %d: last callout %+v, want its Load", id, c)
		}
		return c
	}
	loadA, loadB := start(1, wasmdrive.RootID), start(2, rootB)
	if loadA.cluster != "es-a" || loadB.cluster != "es-b" {
		t.Fatalf("Load clusters %q and %q, want es-a and es-b (each root's configuration)", loadA.cluster, loadB.cluster)
	}
	answer := func(c *fakeCall, root uint32) {
		t.Helper()
		b, err := proto.Marshal(&pb.LoadResponse{Book: &pb.EventBook{Cover: &pb.Cover{Domain: "counter"}}})
		if err != nil {
			t.Fatal(err)
		}
		h.grpcBuf = b
		if err := g.OnGrpcReceiveOn(root, c.token, len(h.grpcBuf)); err != nil {
			t.Fatal(err)
		}
	}
	continued := func(id uint32) bool { return slices.Contains(h.stream(id).continued, StreamRequest) }

	answer(loadA, rootB) // root B has no callout with A's token (tokens are per root in Envoy)
	if continued(1) || continued(2) {
		t.Fatal("an answer delivered on the other root reached a stream")
	}
	answer(loadB, rootB)
	if !continued(2) || continued(1) {
		t.Fatalf("root B's answer: stream 2 continued %v, stream 1 %v", continued(2), continued(1))
	}
	answer(loadA, wasmdrive.RootID)
	if !continued(1) {
		t.Fatal("root A's answer did not continue stream 1")
	}
}
