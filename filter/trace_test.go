package filter

import (
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

const (
	testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	testBaggage     = "tenant=acme,correlation_id=ignored"
)

var traceHeaders = [][2]string{
	{TraceparentHeader, testTraceparent},
	{TracestateHeader, testTracestate},
	{BaggageHeader, testBaggage},
}

// mdMap turns callout metadata into a map, failing on repeated keys.
func mdMap(t *testing.T, c *fakeCall) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range c.metadata {
		if _, dup := m[kv[0]]; dup {
			t.Fatalf("%s/%s: metadata %q repeated: %v", c.service, c.method, kv[0], c.metadata)
		}
		m[kv[0]] = kv[1]
	}
	return m
}

// TestTraceContextOnEveryCallout runs a CASCADE command in a client trace
// through two domains' filters, with a write race that makes the first
// filter run the business logic again by callout, and checks that every
// callout of every kind, in both domains, carries the client's
// traceparent, tracestate and baggage (the cascaded command carries them
// to the next filter as request headers, which passes them on), and that
// every Load names the command's correlation id.
func TestTraceContextOnEveryCallout(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		m := newMesh(t, mode, map[string]string{"counter": cfgCounter, "mirror": cfgMirror})
		m.projectors["proj-summary"] = summary("summary")
		m.projectors["proj-mirror"] = summary("mirror-summary")
		m.sagas["saga-copy"] = copySaga("mirror")
		var calls []*fakeCall
		for _, hs := range m.domains {
			hs.beforeCall = func(c *fakeCall) bool {
				calls = append(calls, c)
				return true
			}
		}
		counterHS := m.domains["counter"]
		raced := false
		counterHS.beforeCall = func(c *fakeCall) bool {
			calls = append(calls, c)
			if c.method == "Append" && !raced {
				raced = true
				m.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)}, Pages: []*pb.EventPage{counter.Event(10)}})
			}
			return true
		}

		r := counterHS.sendWith(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_CASCADE, 2, 3), traceHeaders)
		wantCode(t, r, OK, "")
		if counterHS.h.metricVal["angzarr.retries.counter"] != 1 {
			t.Fatalf("no retry: %v", counterHS.h.metricVal)
		}
		// The upstream request (the logic's first run) keeps the headers.
		up := counterHS.h.stream(counterHS.nextID - 1).maps[RequestHeaders]
		for _, kv := range traceHeaders {
			if up[kv[0]] != kv[1] {
				t.Fatalf("upstream request header %s = %q, want %q", kv[0], up[kv[0]], kv[1])
			}
		}

		tests := []struct {
			callout string
			min     int // callouts of this kind the command makes, at least
			extra   map[string]string
		}{
			{"angzarr.EventStore/Load", 4, nil},   // counter: first load and the retry's; mirror: one per command
			{"angzarr.EventStore/Append", 4, nil}, // counter: raced and retried; mirror: one per command
			{"angzarr.BusinessLogic/Handle", 1, nil},
			{"angzarr.Projector/HandleSync", 3, nil},
			{"angzarr.Saga/HandleSync", 2, nil}, // one per stored page
			{"angzarr.BusinessCoordinator/HandleSync", 2, map[string]string{CascadeDepthHeader: "1"}},
		}
		for _, tc := range tests {
			t.Run(tc.callout, func(t *testing.T) {
				n := 0
				for _, c := range calls {
					if c.service+"/"+c.method != tc.callout {
						continue
					}
					n++
					md := mdMap(t, c)
					for _, kv := range traceHeaders {
						if md[kv[0]] != kv[1] {
							t.Fatalf("callout %d to %s: %s = %q, want %q (metadata %v)", n, c.cluster, kv[0], md[kv[0]], kv[1], c.metadata)
						}
					}
					for k, v := range tc.extra {
						if md[k] != v {
							t.Fatalf("callout %d: %s = %q, want %q (metadata %v)", n, k, md[k], v, c.metadata)
						}
					}
					if c.method == "Load" {
						req := &pb.LoadRequest{}
						mustUnmarshal(t, c.msg, req)
						if req.GetCover().GetCorrelationId() != "corr-1" {
							t.Fatalf("Load cover %v: no correlation id", req.GetCover())
						}
					}
				}
				if n < tc.min {
					t.Fatalf("%d callouts, want at least %d", n, tc.min)
				}
			})
		}
	})
}

// TestTraceHeaders checks which request headers become callout metadata.
func TestTraceHeaders(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		tests := []struct {
			name string
			in   [][2]string
			want map[string]string
		}{
			{"none", nil, map[string]string{}},
			{"all three", traceHeaders, map[string]string{TraceparentHeader: testTraceparent, TracestateHeader: testTracestate, BaggageHeader: testBaggage}},
			{"traceparent only", traceHeaders[:1], map[string]string{TraceparentHeader: testTraceparent}},
			{"baggage without a trace", [][2]string{{BaggageHeader, "k=v"}}, map[string]string{BaggageHeader: "k=v"}},
			{"malformed traceparent drops tracestate, keeps baggage",
				[][2]string{{TraceparentHeader, "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}, {TracestateHeader, "a=b"}, {BaggageHeader, "k=v"}},
				map[string]string{BaggageHeader: "k=v"}},
			{"B3 single header", [][2]string{{"b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"}},
				map[string]string{"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"}},
			{"B3 multiple headers beside W3C", [][2]string{{TraceparentHeader, testTraceparent}, {"x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"},
				{"x-b3-spanid", "e457b5a2e4d86bd1"}, {"x-b3-parentspanid", "05e3ac9a4f6e3b90"}, {"x-b3-sampled", "1"}},
				map[string]string{TraceparentHeader: testTraceparent, "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
					"x-b3-spanid": "e457b5a2e4d86bd1", "x-b3-parentspanid": "05e3ac9a4f6e3b90", "x-b3-sampled": "1"}},
			{"malformed B3 dropped", [][2]string{{"b3", "not b3\r\n"}, {"x-b3-traceid", strings.Repeat("a", 200)}, {"x-b3-sampled", "true"}},
				map[string]string{"x-b3-sampled": "true"}},
			{"empty tracestate and baggage", [][2]string{{TraceparentHeader, testTraceparent}, {TracestateHeader, ""}, {BaggageHeader, ""}},
				map[string]string{TraceparentHeader: testTraceparent}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				hs := newHarnessIn(t, mode, counterConfig)
				var calls []*fakeCall
				hs.beforeCall = func(c *fakeCall) bool { calls = append(calls, c); return true }
				wantCode(t, hs.sendWith(PathHandle, frame(t, cmd(1, 0, 1)), tc.in), OK, "")
				if len(calls) != 2 {
					t.Fatalf("%d callouts", len(calls))
				}
				for _, c := range calls {
					md := mdMap(t, c)
					if len(md) != len(tc.want) {
						t.Fatalf("%s: metadata %v, want %v", c.method, md, tc.want)
					}
					for k, v := range tc.want {
						if md[k] != v {
							t.Fatalf("%s: metadata %v, want %v", c.method, md, tc.want)
						}
					}
				}
			})
		}
	})
}

// TestLoadCarriesCorrelationID: a generated correlation id is on the Load
// too.
func TestLoadCarriesCorrelationID(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		hs := newHarnessIn(t, mode, counterConfig)
		var load *pb.LoadRequest
		hs.beforeCall = func(c *fakeCall) bool {
			if c.method == "Load" {
				load = &pb.LoadRequest{}
				mustUnmarshal(t, c.msg, load)
			}
			return true
		}
		r := hs.handle(cmd(1, 0, 1))
		wantCode(t, r, OK, "")
		if cid := r.headers[CorrelationHeader]; cid == "" || load.GetCover().GetCorrelationId() != cid {
			t.Fatalf("Load cover %v, correlation id %q", load.GetCover(), cid)
		}
	})
}

func TestValidTraceparent(t *testing.T) {
	for v, want := range map[string]bool{
		testTraceparent: true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00":        true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future": true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":        true,
		"": false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x": false, // version 00 has no more fields
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x":  false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":   false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":   false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":   false,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":   false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g":   false,
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":   false,
		"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01":   false,
	} {
		if got := validTraceparent(v); got != want {
			t.Errorf("validTraceparent(%q) = %v, want %v", v, got, want)
		}
	}
}
