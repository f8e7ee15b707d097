//go:build !wasip1

package filter

import (
	"context"
	"sync"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/internal/wasmdrive"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
)

// The wasm mode: the built filter module on wazero (filter/internal/
// wasmdrive), its proxy-wasm imports answered by the harness's fakeHost.
// Every host call the module makes goes through filter/internal/abi
// (pointers, malloc hand-over, pairs encoding, status mapping) and lands in
// the same fakeHost the native mode calls directly, so a scenario's checks
// read the same state in both modes.

// filterRuntime is the module built (wasmbuild) and compiled once per test
// binary; each harness starts its own instance.
var filterRuntime struct {
	once sync.Once
	rt   *wasmdrive.Runtime
	err  error
}

func compiledFilter(t *testing.T) *wasmdrive.Runtime {
	t.Helper()
	r := &filterRuntime
	bin := wasmbuild.Module(t)
	r.once.Do(func() { r.rt, r.err = wasmdrive.NewRuntime(context.Background(), bin) })
	if r.err != nil {
		t.Fatalf("filter module: %v", r.err)
	}
	return r.rt
}

// wasmHost is fakeHost as a wasmdrive.Host: the same state, the two calls
// whose types differ adapted.
type wasmHost struct{ *fakeHost }

var _ wasmdrive.Host = wasmHost{}

func (h wasmHost) SendLocalReply(grpcStatus int32, msg string, headers [][2]string) error {
	return h.fakeHost.SendLocalReply(Code(grpcStatus), msg, headers)
}

func (h wasmHost) BufferSize(b BufferType) int {
	if b == GrpcReceive {
		return len(h.grpcBuf)
	}
	return len(h.cur().bufs[b])
}

// wasmGuest is one instance of the module.
type wasmGuest struct {
	t *testing.T
	h *fakeHost
	g *wasmdrive.Guest
}

func newWasmGuest(t *testing.T, h *fakeHost, cfg []byte) guest {
	t.Helper()
	g, err := compiledFilter(t).Start(context.Background(), wasmHost{h}, cfg)
	if err != nil {
		t.Fatalf("start the filter with %s: %v (logs %q)", cfg, err, h.logs)
	}
	t.Cleanup(func() { g.Close() })
	return &wasmGuest{t: t, h: h, g: g}
}

// must fails the test on a trap.
func (w *wasmGuest) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *wasmGuest) NewStream(id uint32) guestStream {
	w.must(w.g.NewStream(id))
	return wasmStream{w: w, id: id}
}

func (w *wasmGuest) DeleteStream(id uint32) { w.must(w.g.DeleteStream(id)) }

func (w *wasmGuest) OnGrpcReceive(token uint32, size int) { w.must(w.g.OnGrpcReceive(token, size)) }

func (w *wasmGuest) OnGrpcClose(token uint32, code Code, message string) {
	w.must(w.g.OnGrpcClose(token, uint32(code), message))
}

// wasmStream is a stream context of the module.
type wasmStream struct {
	w  *wasmGuest
	id uint32
}

func (s wasmStream) n(m MapType) int { return len(s.w.h.stream(s.id).maps[m]) }

func (s wasmStream) action(a Action, err error) Action {
	s.w.t.Helper()
	s.w.must(err)
	return a
}

func (s wasmStream) OnRequestHeaders(eos bool) Action {
	return s.action(s.w.g.OnRequestHeaders(s.id, s.n(RequestHeaders), eos))
}

func (s wasmStream) OnRequestBody(size int, eos bool) Action {
	return s.action(s.w.g.OnRequestBody(s.id, size, eos))
}

func (s wasmStream) OnRequestTrailers() Action {
	return s.action(s.w.g.OnRequestTrailers(s.id, s.n(RequestTrailers)))
}

func (s wasmStream) OnResponseHeaders(eos bool) Action {
	return s.action(s.w.g.OnResponseHeaders(s.id, s.n(ResponseHeaders), eos))
}

func (s wasmStream) OnResponseBody(size int, eos bool) Action {
	return s.action(s.w.g.OnResponseBody(s.id, size, eos))
}

func (s wasmStream) OnResponseTrailers() Action {
	return s.action(s.w.g.OnResponseTrailers(s.id, s.n(ResponseTrailers)))
}
