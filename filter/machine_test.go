package filter

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/grpcframe"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// conflictDetail decodes the SequenceConflict of a grpc-status-details-bin.
func conflictDetail(t *testing.T, v string) *pb.SequenceConflict {
	t.Helper()
	b, err := base64.RawStdEncoding.DecodeString(v)
	if err != nil {
		t.Fatalf("details: %v", err)
	}
	st := &spb.Status{}
	mustUnmarshal(t, b, st)
	if len(st.Details) != 1 {
		t.Fatalf("details: %v", st)
	}
	sc := &pb.SequenceConflict{}
	if err := st.Details[0].UnmarshalTo(sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

// compensationRequestBook is a decision asking the framework to record the
// failure and stop, as sdk.RequestCompensation answers.
func compensationRequestBook(t *testing.T) *pb.EventBook {
	t.Helper()
	req, err := anypb.New(&pb.CompensationRequest{Reason: "why",
		Actions: []pb.CompensationAction{pb.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE, pb.CompensationAction_COMPENSATION_ACTION_STOP}})
	if err != nil {
		t.Fatal(err)
	}
	return &pb.EventBook{Pages: []*pb.EventPage{{Event: req}}}
}

// wantCompensationRequest checks the answer to compensationRequestBook:
// FAILED_PRECONDITION with the request among the status details.
func wantCompensationRequest(t *testing.T, r result) {
	t.Helper()
	wantCode(t, r, FailedPrecondition, "compensation requested: why")
	b, err := base64.RawStdEncoding.DecodeString(r.details)
	if err != nil {
		t.Fatalf("details %q: %v", r.details, err)
	}
	st := &spb.Status{}
	mustUnmarshal(t, b, st)
	req := &pb.CompensationRequest{}
	if len(st.Details) != 1 || st.Details[0].UnmarshalTo(req) != nil || req.GetReason() != "why" || len(req.GetActions()) != 2 ||
		req.GetActions()[1] != pb.CompensationAction_COMPENSATION_ACTION_STOP {
		t.Fatalf("details %v, want the logic's CompensationRequest", st)
	}
}

func wantCode(t *testing.T, r result, c Code, frag string) {
	t.Helper()
	if r.code != c || !strings.Contains(r.message, frag) {
		t.Fatalf("got %v, want code %d with %q", r, c, frag)
	}
}

func TestCommandPath(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		run  func(t *testing.T, hs *harness)
	}{
		{"create then update", counterConfig, func(t *testing.T, hs *harness) {
			r := hs.handle(cmd(1, 0, 5))
			wantCode(t, r, OK, "")
			if r.reqPath != PathLogicHandle {
				t.Fatalf("path not rewritten: %q", r.reqPath)
			}
			if cid := r.headers[CorrelationHeader]; !uuidV4.MatchString(cid) {
				t.Fatalf("correlation id %q is not a UUIDv4", cid)
			}
			if _, ok := r.headers["content-length"]; ok {
				t.Fatal("response content-length kept")
			}
			ev := r.resp.GetEvents()
			if len(ev.GetPages()) != 1 || ev.GetPages()[0].GetNum() != 0 || ev.GetCover().GetCorrelationId() != r.headers[CorrelationHeader] {
				t.Fatalf("response events: %v", ev)
			}
			r = hs.handle(cmd(1, 1, 2, 3))
			wantCode(t, r, OK, "")
			if got := r.resp.GetEvents().GetPages(); len(got) != 2 || got[0].GetNum() != 1 || got[1].GetNum() != 2 {
				t.Fatalf("second command events: %v", got)
			}
			if n := len(hs.stored(1)); n != 3 {
				t.Fatalf("stored %d pages", n)
			}
			cc := hs.seenByLogic[1]
			if len(cc.GetEvents().GetPages()) != 1 || cc.GetCommand().GetCover().GetDomain() != counter.Domain {
				t.Fatalf("logic was not given the history: %v", cc)
			}
			if hs.h.metricVal["angzarr.commands.counter.ok"] != 2 || len(hs.h.hist["angzarr.command_latency_us.counter"]) != 2 {
				t.Fatalf("metrics: %v %v", hs.h.metricVal, hs.h.hist)
			}
		}},
		{"correlation id kept", counterConfig, func(t *testing.T, hs *harness) {
			c := cmd(1, 0, 1)
			c.Cover.CorrelationId = "flow-42"
			r := hs.handle(c)
			wantCode(t, r, OK, "")
			if r.headers[CorrelationHeader] != "flow-42" || r.resp.GetEvents().GetCover().GetCorrelationId() != "flow-42" {
				t.Fatalf("correlation: %v %v", r.headers, r.resp)
			}
		}},
		{"stale expected sequence is ABORTED before the logic runs", counterConfig, func(t *testing.T, hs *harness) {
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			calls := hs.logicCalls
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, Aborted, "next sequence is 1")
			if !r.local || hs.logicCalls != calls || len(hs.stored(1)) != 1 {
				t.Fatalf("stored or called: local=%v calls=%d stored=%d", r.local, hs.logicCalls-calls, len(hs.stored(1)))
			}
			if sc := conflictDetail(t, r.details); sc.ExpectedSequence != 0 || sc.NextSequence != 1 {
				t.Fatalf("detail: %v", sc)
			}
		}},
		{"write race is ABORTED with the current sequence", counterConfig, func(t *testing.T, hs *harness) {
			hs.beforeCall = func(c *fakeCall) bool {
				if c.method == "Append" {
					hs.beforeCall = nil
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)}, Pages: []*pb.EventPage{counter.Event(7)}})
				}
				return true
			}
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, Aborted, "next sequence is 1")
			if r.local || len(hs.stored(1)) != 1 {
				t.Fatalf("local=%v stored=%d", r.local, len(hs.stored(1)))
			}
			if sc := conflictDetail(t, r.details); sc.NextSequence != 1 {
				t.Fatalf("detail %v", sc)
			}
			if hs.h.metricVal["angzarr.conflicts.counter"] != 1 || hs.h.metricVal["angzarr.commands.counter.aborted"] != 1 {
				t.Fatalf("metrics %v", hs.h.metricVal)
			}
		}},
		{"auto_resequence ignores a stale sequence", counterConfig, func(t *testing.T, hs *harness) {
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			c := cmd(1, 0, 1)
			c.AutoResequence = true
			r := hs.handle(c)
			wantCode(t, r, OK, "")
			if r.resp.GetEvents().GetPages()[0].GetNum() != 1 {
				t.Fatalf("events %v", r.resp)
			}
		}},
		{"auto_resequence retries write races by callout", counterConfig, func(t *testing.T, hs *harness) {
			races := 2
			hs.beforeCall = func(c *fakeCall) bool {
				if c.method == "Append" && races > 0 {
					races--
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)},
						ExpectedSequence: uint32(len(hs.stored(1))), Pages: []*pb.EventPage{counter.Event(10)}})
				}
				return true
			}
			c := cmd(1, 0, 3)
			c.AutoResequence = true
			r := hs.handle(c)
			wantCode(t, r, OK, "")
			if got := r.resp.GetEvents().GetPages(); len(got) != 1 || got[0].GetNum() != 2 {
				t.Fatalf("events %v", got)
			}
			if sum, _ := counter.State(&pb.EventBook{Pages: hs.stored(1)}); sum != 23 {
				t.Fatalf("state %d", sum)
			}
			if hs.h.metricVal["angzarr.retries.counter"] != 2 || hs.h.metricVal["angzarr.conflicts.counter"] != 2 {
				t.Fatalf("metrics %v", hs.h.metricVal)
			}
		}},
		{"auto_resequence retry sees a rejection", counterConfig, func(t *testing.T, hs *harness) {
			hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)}, Pages: []*pb.EventPage{counter.Event(1)}})
			hs.beforeCall = func(c *fakeCall) bool {
				if c.method == "Append" {
					hs.beforeCall = nil
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)}, ExpectedSequence: 1, Pages: []*pb.EventPage{counter.Event(-1)}})
				}
				return true
			}
			c := cmd(1, 1, -1)
			c.AutoResequence = true
			r := hs.handle(c)
			wantCode(t, r, FailedPrecondition, "below zero")
			if len(hs.stored(1)) != 2 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		{"a compensation request on the re-run after a conflict reaches the caller", counterConfig, func(t *testing.T, hs *harness) {
			// The logic's second answer, by unary callout after the write
			// conflict, asks the framework to act (sdk.RequestCompensation):
			// the request travels in the answer's message, since Envoy
			// delivers a unary callout's failure without its trailers.
			hs.beforeCall = func(c *fakeCall) bool {
				if c.method == "Append" {
					hs.beforeCall = nil
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)}, Pages: []*pb.EventPage{counter.Event(1)}})
				}
				return true
			}
			logic := hs.logic
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				if hs.logicCalls > 1 {
					return compensationRequestBook(t), nil
				}
				return logic(cc)
			}
			c := cmd(1, 0, 1)
			c.AutoResequence = true
			r := hs.handle(c)
			wantCompensationRequest(t, r)
			if hs.logicCalls != 2 || len(hs.stored(1)) != 1 {
				t.Fatalf("logic ran %d times, %d events stored, want 2 and only the conflicting one", hs.logicCalls, len(hs.stored(1)))
			}
		}},
		{"a compensation request on the first answer reaches the caller", counterConfig, func(t *testing.T, hs *harness) {
			hs.logic = func(*pb.ContextualCommand) (*pb.EventBook, *Status) { return compensationRequestBook(t), nil }
			wantCompensationRequest(t, hs.handle(cmd(1, 0, 1)))
			if len(hs.stored(1)) != 0 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		{"a compensation request with events stores nothing", counterConfig, func(t *testing.T, hs *harness) {
			hs.logic = func(*pb.ContextualCommand) (*pb.EventBook, *Status) {
				b := compensationRequestBook(t)
				b.Pages = append(b.Pages, counter.Event(1))
				return b, nil
			}
			wantCode(t, hs.handle(cmd(1, 0, 1)), Internal, "CompensationRequest together with events")
			if len(hs.stored(1)) != 0 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		{"auto_resequence gives up after max_retries", counterConfig, func(t *testing.T, hs *harness) {
			hs.beforeCall = func(c *fakeCall) bool {
				if c.method == "Append" {
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)},
						ExpectedSequence: uint32(len(hs.stored(1))), Pages: []*pb.EventPage{counter.Event(1)}})
				}
				return true
			}
			c := cmd(1, 0, 1)
			c.AutoResequence = true
			r := hs.handle(c)
			wantCode(t, r, Aborted, "gave up after 3 retries")
			if len(hs.stored(1)) != 4 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		{"auto_resequence backs off before each retry, jittered and capped", `{"domains":["counter"],"max_retries":3,"retry_backoff":"10ms","retry_backoff_max":"30ms"}`, func(t *testing.T, hs *harness) {
			var delays []uint32
			hs.beforeCall = func(c *fakeCall) bool {
				switch c.method {
				case "Load":
					req := &pb.LoadRequest{}
					mustUnmarshal(t, c.msg, req)
					delays = append(delays, req.GetDelayMs())
				case "Append":
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)},
						ExpectedSequence: uint32(len(hs.stored(1))), Pages: []*pb.EventPage{counter.Event(1)}})
				}
				return true
			}
			c := cmd(1, 0, 1)
			c.AutoResequence = true
			wantCode(t, hs.handle(c), Aborted, "gave up after 3 retries")
			// The first load, one per retry, and the conflict report's.
			if len(delays) != 5 || delays[0] != 0 || delays[4] != 0 {
				t.Fatalf("load delays %v ms, want 5 loads, the first and the last at once", delays)
			}
			distinct := map[uint32]bool{}
			// unit 10ms (the fake clock makes attempts take no time):
			// caps 20, 40 → 30, 80 → 30.
			for i, most := range []uint32{20, 30, 30} {
				if d := delays[i+1]; d > most {
					t.Fatalf("retry %d waited %d ms, want at most %d (load delays %v)", i+1, d, most, delays)
				}
				distinct[delays[i+1]] = true
			}
			if len(distinct) < 2 {
				t.Fatalf("retry delays %v ms are not jittered", delays[1:4])
			}
		}},
		{"auto_resequence backs off in units of what an attempt takes", `{"domains":["counter"],"max_retries":3,"retry_backoff":"1ms","retry_backoff_max":"1s"}`, func(t *testing.T, hs *harness) {
			var delays []uint32
			hs.beforeCall = func(c *fakeCall) bool {
				switch c.method {
				case "Load":
					req := &pb.LoadRequest{}
					mustUnmarshal(t, c.msg, req)
					delays = append(delays, req.GetDelayMs())
				case "Handle":
					hs.h.now = hs.h.now.Add(50 * time.Millisecond) // a slow logic
				case "Append":
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)},
						ExpectedSequence: uint32(len(hs.stored(1))), Pages: []*pb.EventPage{counter.Event(1)}})
				}
				return true
			}
			c := cmd(1, 0, 1)
			c.AutoResequence = true
			wantCode(t, hs.handle(c), Aborted, "gave up after 3 retries")
			if len(delays) != 5 {
				t.Fatalf("load delays %v ms", delays)
			}
			// Each attempt takes 50ms: caps 100, 200, 400ms, where a
			// fixed 1ms unit would allow 2, 4, 8.
			longest := uint32(0)
			for i, most := range []uint32{100, 200, 400} {
				if d := delays[i+1]; d > most {
					t.Fatalf("retry %d waited %d ms, want at most %d (load delays %v)", i+1, d, most, delays)
				}
				longest = max(longest, delays[i+1])
			}
			if longest <= 8 {
				t.Fatalf("retry delays %v ms do not scale with the attempts' 50ms", delays[1:4])
			}
		}},
		{"auto_resequence stops retrying at the command's deadline", counterConfig, func(t *testing.T, hs *harness) {
			hs.beforeCall = func(c *fakeCall) bool {
				if c.method == "Append" {
					hs.store.append(&pb.AppendRequest{Cover: &pb.Cover{Domain: "counter", Root: root(1)},
						ExpectedSequence: uint32(len(hs.stored(1))), Pages: []*pb.EventPage{counter.Event(1)}})
				}
				return true
			}
			c := cmd(1, 0, 1)
			c.AutoResequence = true
			// The fake clock moves 1µs per reading: the deadline passes
			// before max_retries (3) are made.
			r := hs.sendWith(PathHandle, frame(t, c), [][2]string{{"grpc-timeout", "2u"}})
			wantCode(t, r, Aborted, "retries at the command's deadline")
			if n := hs.h.metricVal["angzarr.retries.counter"]; n >= 3 {
				t.Fatalf("%v retries", n)
			}
		}},
		{"idempotency key: a repeat returns the original response", counterConfig, func(t *testing.T, hs *harness) {
			c := cmd(1, 0, 4)
			c.IdempotencyKey = "k-1"
			first := hs.handle(c)
			wantCode(t, first, OK, "")
			c2 := cmd(1, 0, 4)
			c2.IdempotencyKey = "k-1"
			again := hs.handle(c2)
			wantCode(t, again, OK, "")
			if !proto.Equal(first.resp.GetEvents().GetPages()[0], again.resp.GetEvents().GetPages()[0]) {
				t.Fatalf("repeat answered differently: %v vs %v", first.resp, again.resp)
			}
			if len(hs.stored(1)) != 1 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
			if probe := hs.seenByLogic[1]; len(probe.GetCommand().GetPages()) != 0 {
				t.Fatalf("repeat was not a no-op probe: %v", probe)
			}
			if hs.h.metricVal["angzarr.commands.counter.duplicate"] != 1 {
				t.Fatalf("metrics %v", hs.h.metricVal)
			}
		}},
		{"saga origin derives an idempotency key", counterConfig, func(t *testing.T, hs *harness) {
			mk := func() *pb.CommandBook {
				c := cmd(1, 0, 1)
				c.AutoResequence = true
				c.SagaOrigin = &pb.SagaCommandOrigin{SagaName: "s", TriggeringAggregate: &pb.Cover{Domain: "order", Root: root(9)}, TriggeringEventSequence: 3}
				return c
			}
			wantCode(t, hs.handle(mk()), OK, "")
			wantCode(t, hs.handle(mk()), OK, "")
			if len(hs.stored(1)) != 1 {
				t.Fatalf("saga command applied %d times", len(hs.stored(1)))
			}
		}},
		{"business rejection passes through, nothing stored", counterConfig, func(t *testing.T, hs *harness) {
			r := hs.handle(cmd(1, 0, -1))
			wantCode(t, r, FailedPrecondition, "below zero")
			if len(hs.stored(1)) != 0 || hs.h.metricVal["angzarr.commands.counter.rejected"] != 1 {
				t.Fatalf("stored %d, metrics %v", len(hs.stored(1)), hs.h.metricVal)
			}
			if r.headers[CorrelationHeader] == "" {
				t.Fatal("no correlation id on a rejection")
			}
		}},
		{"event service down at load: UNAVAILABLE", counterConfig, func(t *testing.T, hs *harness) {
			hs.store.down = true
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, Unavailable, "event service load failed")
			if !r.local || hs.logicCalls != 0 {
				t.Fatalf("local=%v logic=%d", r.local, hs.logicCalls)
			}
			hs.store.down = false
			if len(hs.stored(1)) != 0 {
				t.Fatal("stored")
			}
		}},
		{"event service down at append: UNAVAILABLE", counterConfig, func(t *testing.T, hs *harness) {
			hs.beforeCall = func(c *fakeCall) bool {
				hs.store.down = c.method == "Append"
				return true
			}
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, Unavailable, "append")
			hs.store.down = false
			if len(hs.stored(1)) != 0 {
				t.Fatal("stored")
			}
		}},
		{"callout cannot start: UNAVAILABLE", counterConfig, func(t *testing.T, hs *harness) {
			hs.h.failCall = true
			wantCode(t, hs.handle(cmd(1, 0, 1)), Unavailable, "cannot call angzarr.EventStore/Load")
		}},
		{"invalid commands", counterConfig, func(t *testing.T, hs *harness) {
			noRoot := cmd(1, 0, 1)
			noRoot.Cover.Root = nil
			shortRoot := cmd(1, 0, 1)
			shortRoot.Cover.Root = &pb.UUID{Value: []byte{1, 2, 3}}
			other := cmd(1, 0, 1)
			other.Cover.Domain = "order"
			noCover := cmd(1, 0, 1)
			noCover.Cover = nil
			emptyPage := cmd(1, 0, 1)
			emptyPage.Pages[0].Command = nil
			for _, tc := range []struct {
				body []byte
				frag string
			}{
				{frame(t, noRoot), "no aggregate root"},
				{frame(t, shortRoot), "16-byte"},
				{frame(t, other), `domain "order" is not served`},
				{frame(t, noCover), "no cover"},
				{frame(t, cmd(1, 0)), "no pages"},
				{frame(t, emptyPage), "page 0 has no command"},
				{grpcframe.Encode([]byte{0xff, 0xff}), "not an angzarr.CommandBook"},
				{[]byte{0, 0, 0, 9, 0, 1}, "malformed gRPC request"},
			} {
				r := hs.send(PathHandle, tc.body)
				if !r.local {
					t.Errorf("%s: not a local reply", tc.frag)
				}
				wantCode(t, r, InvalidArgument, tc.frag)
			}
			if len(hs.h.calls) != 0 || hs.store.loads != 0 || hs.logicCalls != 0 {
				t.Fatal("invalid commands reached the store or the logic")
			}
			if hs.h.metricVal["angzarr.commands.counter.invalid"] == 0 {
				t.Fatalf("metrics %v", hs.h.metricVal)
			}
		}},
		{"request without a body", counterConfig, func(t *testing.T, hs *harness) {
			wantCode(t, hs.send(PathHandle, nil), InvalidArgument, "no body")
		}},
		{"compressed message refused", counterConfig, func(t *testing.T, hs *harness) {
			b := frame(t, cmd(1, 0, 1))
			b[0] = 1
			wantCode(t, hs.send(PathHandle, b), Unimplemented, "compressed gRPC messages are not supported")
		}},
		{"body over the limit refused", `{"domains":["counter"],"max_body_bytes":64}`, func(t *testing.T, hs *harness) {
			c := cmd(1, 0, 1)
			c.IdempotencyKey = strings.Repeat("k", 100)
			wantCode(t, hs.handle(c), ResourceExhausted, "exceeds the limit of 64 bytes")
		}},
		{"direct BusinessLogic call denied", counterConfig, func(t *testing.T, hs *harness) {
			r := hs.send(PathLogicHandle, frame(t, &pb.ContextualCommand{}))
			wantCode(t, r, PermissionDenied, "internal")
			if hs.store.loads != 0 {
				t.Fatal("loaded")
			}
		}},
		{"other paths pass through untouched", counterConfig, func(t *testing.T, hs *harness) {
			r := hs.send("/grpc.health.v1.Health/Check", []byte{0, 0, 0, 0, 0})
			if r.local || r.reqPath != "/grpc.health.v1.Health/Check" || len(hs.h.calls) != 0 {
				t.Fatalf("touched: %v", r)
			}
		}},
		{"pass-through configuration touches nothing", `{}`, func(t *testing.T, hs *harness) {
			id := hs.nextID
			s := hs.g.NewStream(id)
			defer hs.g.DeleteStream(id)
			hs.h.current = id
			fs := hs.h.stream(id)
			fs.maps[RequestHeaders] = map[string]string{":path": PathHandle, "content-length": "9"}
			if s.OnRequestHeaders(false) != Continue || s.OnRequestBody(9, true) != Continue ||
				s.OnResponseHeaders(false) != Continue || s.OnResponseBody(3, false) != Continue || s.OnResponseTrailers() != Continue {
				t.Fatal("paused")
			}
			if fs.maps[RequestHeaders][":path"] != PathHandle || fs.maps[RequestHeaders]["content-length"] != "9" || len(hs.h.calls) != 0 {
				t.Fatalf("touched %v", fs.maps[RequestHeaders])
			}
		}},
		{"HandleSync NONE works like Handle; SIMPLE and CASCADE without subscribers too", counterConfig, func(t *testing.T, hs *harness) {
			r := hs.send(PathHandleSync, frame(t, &pb.SyncCommandBook{Command: cmd(1, 0, 2)}))
			wantCode(t, r, OK, "")
			if len(r.resp.GetEvents().GetPages()) != 1 {
				t.Fatalf("%v", r)
			}
			for i, m := range []pb.SyncMode{pb.SyncMode_SYNC_MODE_SIMPLE, pb.SyncMode_SYNC_MODE_CASCADE} {
				r := hs.send(PathHandleSync, frame(t, &pb.SyncCommandBook{Command: cmd(1, uint32(1+i), 2), SyncMode: m}))
				wantCode(t, r, OK, "")
				if len(r.resp.GetEvents().GetPages()) != 1 || len(r.resp.GetProjections()) != 0 || len(r.resp.GetCascade()) != 0 {
					t.Fatalf("%s: %v", m, r)
				}
			}
			wantCode(t, hs.send(PathHandleSync, frame(t, &pb.SyncCommandBook{Command: cmd(1, 3, 2), SyncMode: 7})), InvalidArgument, "unknown sync mode SyncMode(7)")
			wantCode(t, hs.send(PathHandleSync, frame(t, &pb.SyncCommandBook{})), InvalidArgument, "no command")
			if len(hs.stored(1)) != 3 {
				t.Fatal("stored")
			}
		}},
		{"Record appends the events and answers them", typedConfig, func(t *testing.T, hs *harness) {
			book := &pb.EventBook{Cover: &pb.Cover{Domain: "counter", Root: root(2)}, Pages: []*pb.EventPage{counter.Event(3), counter.Event(4)}}
			r := hs.send(PathRecord, frame(t, book))
			wantCode(t, r, OK, "")
			if got := r.resp.GetEvents().GetPages(); len(got) != 2 || got[1].GetNum() != 1 {
				t.Fatalf("answer %v", r.resp)
			}
			if len(hs.stored(2)) != 2 || len(hs.seenByLogic[0].GetCommand().GetPages()) != 0 {
				t.Fatalf("stored %d, logic saw %v", len(hs.stored(2)), hs.seenByLogic[0])
			}
			if !uuidV4.MatchString(r.headers[CorrelationHeader]) {
				t.Fatalf("headers %v", r.headers)
			}
			// A Record whose sequence is stale is ABORTED, nothing stored.
			stale := &pb.EventBook{Cover: book.Cover, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: counter.Event(1).Event}}}
			r = hs.send(PathRecord, frame(t, stale))
			wantCode(t, r, Aborted, "next sequence is 2")
			if !r.local || len(hs.stored(2)) != 2 {
				t.Fatalf("local=%v stored=%d", r.local, len(hs.stored(2)))
			}
			wantCode(t, hs.send(PathRecord, frame(t, &pb.EventBook{Cover: book.Cover})), InvalidArgument, "no pages")
		}},
		{"probe refused by the logic is an INTERNAL error", typedConfig, func(t *testing.T, hs *harness) {
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				return nil, statusf(InvalidArgument, "no commands")
			}
			book := &pb.EventBook{Cover: &pb.Cover{Domain: "counter", Root: root(2)}, Pages: []*pb.EventPage{counter.Event(3)}}
			wantCode(t, hs.send(PathRecord, frame(t, book)), Internal, "no-op probe")
		}},
		{"snapshot state is stored with the events", counterConfig, func(t *testing.T, hs *harness) {
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				b, _ := counter.Decide(cc, 2)
				return b, nil
			}
			wantCode(t, hs.handle(cmd(1, 0, 1, 1)), OK, "")
			a := hs.store.agg(&pb.Cover{Domain: "counter", Root: root(1)})
			v := &wrapperspb.Int64Value{}
			if a.snapshot == nil || a.snapshot.GetSequence() != 2 || a.snapshot.GetState().UnmarshalTo(v) != nil || v.Value != 2 {
				t.Fatalf("snapshot %v", a.snapshot)
			}
			// The next command is decided on snapshot + events after it.
			wantCode(t, hs.handle(cmd(1, 2, -2)), OK, "")
			if cc := hs.seenByLogic[1]; cc.GetEvents().GetSnapshot() == nil || len(cc.GetEvents().GetPages()) != 0 {
				t.Fatalf("logic saw %v", cc.GetEvents())
			}
		}},
		{"logic answer over the limit: RESOURCE_EXHAUSTED, nothing stored", `{"domains":["counter"],"max_body_bytes":300}`, func(t *testing.T, hs *harness) {
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				b := &pb.EventBook{}
				for i := 0; i < 30; i++ {
					b.Pages = append(b.Pages, counter.Event(int64(i+1)))
				}
				return b, nil
			}
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, ResourceExhausted, "business logic answer")
			if r.local || len(hs.stored(1)) != 0 {
				t.Fatalf("local=%v stored=%d", r.local, len(hs.stored(1)))
			}
		}},
		{"logic answers no events: nothing stored, OK", counterConfig, func(t *testing.T, hs *harness) {
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) { return &pb.EventBook{}, nil }
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, OK, "")
			if len(hs.stored(1)) != 0 || len(r.resp.GetEvents().GetPages()) != 0 {
				t.Fatal("stored")
			}
		}},
		{"logic answers garbage: INTERNAL, nothing stored", counterConfig, func(t *testing.T, hs *harness) {
			hs.mangleResponse = func([]byte) []byte { return grpcframe.Encode([]byte{0xff, 0xff, 0xff}) }
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, Internal, "undecodable EventBook")
			if len(hs.stored(1)) != 0 {
				t.Fatal("stored")
			}
			hs.mangleResponse = func(b []byte) []byte { b[0] = 1; return b }
			wantCode(t, hs.handle(cmd(1, 0, 1)), Internal, "compressed")
		}},
	}
	forModes(t, func(t *testing.T, mode guestMode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				hs := newHarnessIn(t, mode, tt.cfg)
				tt.run(t, hs)
				hs.checkNoLeaks(t)
			})
		}
	})
}

// TestCalloutResultForGoneStream: results arrive on the root context; a
// stream the host already ended (BAD_ARGUMENT from set_effective_context) or
// the filter already forgot drops them without touching anything.
func TestCalloutResultForGoneStream(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		for _, how := range []string{"host ended it", "deleted"} {
			t.Run(how, func(t *testing.T) {
				hs := newHarnessIn(t, mode, counterConfig)
				hs.h.current = 7
				fs := hs.h.stream(7)
				body := frame(t, cmd(1, 0, 1))
				fs.maps[RequestHeaders] = map[string]string{":path": PathHandle}
				fs.bufs[RequestBody] = body
				s := hs.g.NewStream(7)
				if s.OnRequestHeaders(false) != Continue || s.OnRequestBody(len(body), true) != Pause {
					t.Fatal("command did not pause for its load")
				}
				if len(hs.h.calls) != 1 {
					t.Fatalf("calls %v", hs.h.calls)
				}
				if how == "deleted" {
					hs.g.DeleteStream(7)
				} else {
					fs.gone = true
				}
				hs.pump()
				if fs.reply != nil || len(fs.continued) != 0 || len(hs.h.calls) != 0 {
					t.Fatalf("gone stream touched: reply=%v continued=%v calls=%d", fs.reply, fs.continued, len(hs.h.calls))
				}
				// The filter forgot the stream on its own.
				hs.checkNoLeaks(t)
				if how != "deleted" {
					// Then the host ends it.
					hs.g.DeleteStream(7)
				}
				if hs.h.metricVal["angzarr.commands.counter.error"] != 1 {
					t.Fatalf("metrics %v", hs.h.metricVal)
				}
			})
		}
	})
}

// TestConfigure: a bad configuration fails with one log line and keeps the
// previous one.
func TestConfigure(t *testing.T) {
	h := newFakeHost()
	p := NewPlugin(h)
	if err := p.Configure([]byte(`{"domains":["counter"]}`)); err != nil {
		t.Fatal(err)
	}
	h.logs = nil
	if err := p.Configure([]byte(`{"domain":"x"}`)); err == nil {
		t.Fatal("unknown key accepted")
	}
	if len(h.logs) != 1 || !strings.Contains(h.logs[0], "bad configuration") || !strings.Contains(h.logs[0], "unknown field") {
		t.Fatalf("logs %q", h.logs)
	}
	if !p.Config().Serves("counter") {
		t.Fatal("previous configuration lost")
	}
}

// TestRequestTrailers: a request whose body ends with trailers (not with
// end of stream on the last data) is processed at the trailers.
func TestRequestTrailers(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		hs := newHarnessIn(t, mode, counterConfig)
		hs.h.current = 3
		fs := hs.h.stream(3)
		body := frame(t, cmd(1, 0, 1))
		fs.maps[RequestHeaders] = map[string]string{":path": PathHandle}
		fs.bufs[RequestBody] = body
		s := hs.g.NewStream(3)
		defer hs.g.DeleteStream(3)
		if s.OnRequestHeaders(false) != Continue || s.OnRequestBody(len(body), false) != Pause {
			t.Fatal("body not buffered")
		}
		if len(hs.h.calls) != 0 {
			t.Fatal("processed before the end of the request")
		}
		if s.OnRequestTrailers() != Pause || len(hs.h.calls) != 1 || hs.h.calls[0].method != "Load" {
			t.Fatalf("trailers did not start the load: %v", hs.h.calls)
		}
		hs.pump()
		if !contains(fs.continued, StreamRequest) {
			t.Fatal("request not continued after the load")
		}
	})
}
