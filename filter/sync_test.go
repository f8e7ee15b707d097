package filter

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// mesh is several domains' filters (one harness each) over one store, with
// projectors and sagas answered in memory and coordinator callouts run
// through the target domain's filter, as in the mesh.
type mesh struct {
	t          *testing.T
	store      *memStore
	domains    map[string]*harness
	projectors map[string]func(*pb.EventBook) (*pb.Projection, *Status) // by cluster
	sagas      map[string]func(*pb.EventBook) (*pb.SagaResponse, *Status)
	calls      []*fakeCall // every projector, saga and coordinator callout
	sagaSeen   []*pb.EventBook
}

func newMesh(t *testing.T, mode guestMode, cfgs map[string]string) *mesh {
	m := &mesh{t: t, store: newMemStore(), domains: map[string]*harness{},
		projectors: map[string]func(*pb.EventBook) (*pb.Projection, *Status){},
		sagas:      map[string]func(*pb.EventBook) (*pb.SagaResponse, *Status){}}
	for d, cfg := range cfgs {
		hs := newHarnessIn(t, mode, cfg)
		hs.store = m.store
		hs.extra = m.answer
		m.domains[d] = hs
	}
	return m
}

// answer serves projector, saga and coordinator callouts.
func (m *mesh) answer(c *fakeCall) (proto.Message, *Status, bool) {
	m.calls = append(m.calls, c)
	switch c.service + "/" + c.method {
	case "angzarr.Projector/HandleSync":
		book := &pb.EventBook{}
		mustUnmarshal(m.t, c.msg, book)
		f, ok := m.projectors[c.cluster]
		if !ok {
			return nil, statusf(Unavailable, "no healthy upstream"), true
		}
		out, st := f(book)
		return out, st, true
	case "angzarr.Saga/HandleSync":
		book := &pb.EventBook{}
		mustUnmarshal(m.t, c.msg, book)
		m.sagaSeen = append(m.sagaSeen, book)
		out, st := m.sagas[c.cluster](book)
		return out, st, true
	case "angzarr.BusinessCoordinator/HandleSync":
		hs, ok := m.domains[strings.TrimPrefix(c.cluster, "coord-")]
		if !ok {
			return nil, statusf(Unavailable, "no cluster %s", c.cluster), true
		}
		r := hs.sendWith(PathHandleSync, grpcFrame(c.msg), c.metadata)
		if r.code != OK {
			return nil, &Status{Code: r.code, Message: r.message}, true
		}
		return r.resp, nil, true
	}
	return nil, nil, false
}

func grpcFrame(b []byte) []byte {
	out := []byte{0, 0, 0, 0, 0}
	out[1], out[2], out[3], out[4] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
	return append(out, b...)
}

// summary is a projector: the count of events it saw and the last sequence.
func summary(name string) func(*pb.EventBook) (*pb.Projection, *Status) {
	return func(b *pb.EventBook) (*pb.Projection, *Status) {
		n, _ := anypb.New(wrapperspb.Int64(int64(len(b.GetPages()))))
		last := b.GetPages()[len(b.GetPages())-1].GetNum()
		return &pb.Projection{Cover: b.GetCover(), Projector: name, Sequence: last, Projection: n}, nil
	}
}

// copySaga sends each event's delta to the same root in domain target.
func copySaga(target string) func(*pb.EventBook) (*pb.SagaResponse, *Status) {
	return func(b *pb.EventBook) (*pb.SagaResponse, *Status) {
		v := &wrapperspb.Int64Value{}
		if err := b.GetPages()[0].GetEvent().UnmarshalTo(v); err != nil {
			return nil, statusf(Internal, "%v", err)
		}
		return &pb.SagaResponse{Commands: []*pb.CommandBook{{
			Cover: &pb.Cover{Domain: target, Root: b.GetCover().GetRoot()},
			Pages: []*pb.CommandPage{counter.Command(v.GetValue(), 0)},
		}}}, nil
	}
}

func (m *mesh) stored(domain string, r byte) []*pb.EventPage {
	return m.store.agg(&pb.Cover{Domain: domain, Root: root(r)}).pages
}

func syncCmd(domain string, r byte, mode pb.SyncMode, deltas ...int64) []byte {
	cb := &pb.CommandBook{Cover: &pb.Cover{Domain: domain, Root: root(r), CorrelationId: "corr-1"}}
	for _, d := range deltas {
		cb.Pages = append(cb.Pages, counter.Command(d, 0))
	}
	cb.AutoResequence = true
	b, _ := proto.Marshal(&pb.SyncCommandBook{Command: cb, SyncMode: mode})
	return grpcFrame(b)
}

// partial decodes the CommandResponse of a sync failure's details.
func partial(t *testing.T, v string) *pb.CommandResponse {
	t.Helper()
	b, err := base64.RawStdEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	st := &spb.Status{}
	mustUnmarshal(t, b, st)
	for _, d := range st.GetDetails() {
		cr := &pb.CommandResponse{}
		if d.MessageIs(cr) {
			if err := d.UnmarshalTo(cr); err != nil {
				t.Fatal(err)
			}
			return cr
		}
	}
	t.Fatalf("no CommandResponse in details %v", st)
	return nil
}

const (
	cfgCounter = `{"domains":["counter"],"sync_projectors":[{"name":"summary","cluster":"proj-summary"}],
		"sagas":[{"name":"copy","cluster":"saga-copy","targets":["mirror"]}],"coordinators":{"mirror":"coord-mirror"}}`
	cfgMirror = `{"domains":["mirror"],"sync_projectors":[{"name":"mirror-summary","cluster":"proj-mirror"}]}`
)

func TestSyncModes(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		tests := []struct {
			name string
			cfgs map[string]string
			run  func(t *testing.T, m *mesh)
		}{
			{"SIMPLE returns the projections, sagas stay asynchronous", map[string]string{"counter": cfgCounter}, func(t *testing.T, m *mesh) {
				m.projectors["proj-summary"] = summary("summary")
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_SIMPLE, 2, 3))
				wantCode(t, r, OK, "")
				ps := r.resp.GetProjections()
				if len(ps) != 1 || ps[0].GetProjector() != "summary" || ps[0].GetSequence() != 1 || len(r.resp.GetCascade()) != 0 {
					t.Fatalf("response %v", r.resp)
				}
				if len(m.calls) != 1 || m.calls[0].service != "angzarr.Projector" || m.calls[0].cluster != "proj-summary" {
					t.Fatalf("calls %v", m.calls)
				}
				// The projector saw the stored book: cover with correlation id,
				// pages with their sequences.
				seen := &pb.EventBook{}
				mustUnmarshal(t, m.calls[0].msg, seen)
				if seen.GetCover().GetCorrelationId() != "corr-1" || seen.GetCover().GetDomain() != "counter" ||
					len(seen.GetPages()) != 2 || seen.GetPages()[1].GetNum() != 1 {
					t.Fatalf("projector saw %v", seen)
				}
				h := m.domains["counter"].h
				if h.metricVal["angzarr.sync_projector_calls.summary.ok"] != 1 || len(h.hist["angzarr.sync_projector_latency_us.summary"]) != 1 {
					t.Fatalf("metrics %v %v", h.metricVal, h.hist)
				}
			}},
			{"CASCADE executes saga commands through the target's filter", map[string]string{"counter": cfgCounter, "mirror": cfgMirror}, func(t *testing.T, m *mesh) {
				m.projectors["proj-summary"] = summary("summary")
				m.projectors["proj-mirror"] = summary("mirror-summary")
				m.sagas["saga-copy"] = copySaga("mirror")
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_CASCADE, 2, 3))
				wantCode(t, r, OK, "")
				if got := r.resp.GetEvents().GetPages(); len(got) != 2 {
					t.Fatalf("events %v", r.resp)
				}
				// One saga call per stored page, two mirror commands, in order.
				cas := r.resp.GetCascade()
				if len(cas) != 2 || cas[0].GetCover().GetDomain() != "mirror" || cas[0].GetPages()[0].GetNum() != 0 || cas[1].GetPages()[0].GetNum() != 1 {
					t.Fatalf("cascade %v", cas)
				}
				var names []string
				for _, p := range r.resp.GetProjections() {
					names = append(names, p.GetProjector()+"@"+p.GetCover().GetDomain())
				}
				if strings.Join(names, ",") != "summary@counter,mirror-summary@mirror,mirror-summary@mirror" {
					t.Fatalf("projections %v", names)
				}
				if len(m.stored("mirror", 1)) != 2 || len(m.stored("counter", 1)) != 2 {
					t.Fatal("stored")
				}
				if len(m.sagaSeen) != 2 || len(m.sagaSeen[1].GetPages()) != 1 || m.sagaSeen[1].GetPages()[0].GetNum() != 1 {
					t.Fatalf("saga saw %v", m.sagaSeen)
				}
				// The cascaded commands: origin, auto_resequence, key, correlation, metadata.
				var coord []*fakeCall
				for _, c := range m.calls {
					if c.service == "angzarr.BusinessCoordinator" {
						coord = append(coord, c)
					}
				}
				if len(coord) != 2 {
					t.Fatalf("coordinator calls %d", len(coord))
				}
				for i, c := range coord {
					scb := &pb.SyncCommandBook{}
					mustUnmarshal(t, c.msg, scb)
					cb := scb.GetCommand()
					o := cb.GetSagaOrigin()
					wantKey := sagakey.Key("copy", "counter", root(1).GetValue(), uint32(i), 0)
					if scb.GetSyncMode() != pb.SyncMode_SYNC_MODE_CASCADE || !cb.GetAutoResequence() || cb.GetIdempotencyKey() != wantKey ||
						o.GetSagaName() != "copy" || o.GetTriggeringEventSequence() != uint32(i) || o.GetTriggeringAggregate().GetDomain() != "counter" ||
						cb.GetCover().GetCorrelationId() != "corr-1" || c.cluster != "coord-mirror" {
						t.Fatalf("command %d: %v (cluster %s)", i, scb, c.cluster)
					}
					md := map[string]string{}
					for _, kv := range c.metadata {
						md[kv[0]] = kv[1]
					}
					if md[CascadeDepthHeader] != "1" || md[CascadePathHeader] != "counter/"+rootString(root(1).GetValue()) {
						t.Fatalf("metadata %v", md)
					}
				}
				// The dispatcher's later delivery of the same event to the same
				// saga carries the same key: a no-op.
				later := &pb.CommandBook{Cover: &pb.Cover{Domain: "mirror", Root: root(1)}, Pages: []*pb.CommandPage{counter.Command(2, 0)},
					AutoResequence: true, IdempotencyKey: sagakey.Key("copy", "counter", root(1).GetValue(), 0, 0)}
				wantCode(t, m.domains["mirror"].handle(later), OK, "")
				if len(m.stored("mirror", 1)) != 2 {
					t.Fatal("the later delivery was applied again")
				}
				if h := m.domains["counter"].h; len(h.hist["angzarr.cascade_command_latency_us.mirror"]) != 2 ||
					h.metricVal["angzarr.sync_saga_calls.copy.ok"] != 2 || len(h.hist["angzarr.cascade_depth.counter"]) != 1 {
					t.Fatalf("metrics %v %v", h.metricVal, h.hist)
				}
				if h := m.domains["mirror"].h; len(h.hist["angzarr.cascade_depth.mirror"]) != 2 || h.hist["angzarr.cascade_depth.mirror"][0] != 1 {
					t.Fatalf("mirror metrics %v", h.hist)
				}
				// Replaying the whole CASCADE command with its key answers the
				// same events (every step is idempotent).
			}},
			{"CASCADE depth limit", map[string]string{
				"counter": cfgCounter,
				"mirror":  `{"domains":["mirror"],"sagas":[{"name":"copy2","cluster":"saga-copy2","targets":["echo"]}],"coordinators":{"echo":"coord-echo"}}`,
				"echo":    `{"domains":["echo"],"max_cascade_depth":1}`,
			}, func(t *testing.T, m *mesh) {
				m.projectors["proj-summary"] = summary("summary")
				m.sagas["saga-copy"] = copySaga("mirror")
				m.sagas["saga-copy2"] = copySaga("echo")
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_CASCADE, 2))
				wantCode(t, r, FailedPrecondition, "cascade depth limit of 1 exceeded")
				for _, frag := range []string{"the command's events were stored (counter/", "counter/" + rootString(root(1).GetValue()) + " -> mirror/", "-> echo/", "saga copy2"} {
					if !strings.Contains(r.message, frag) {
						t.Fatalf("message %q lacks %q", r.message, frag)
					}
				}
				if len(m.stored("counter", 1)) != 1 || len(m.stored("mirror", 1)) != 1 || len(m.stored("echo", 1)) != 0 {
					t.Fatal("stored")
				}
				p := partial(t, r.details)
				if len(p.GetEvents().GetPages()) != 1 || len(p.GetProjections()) != 1 {
					t.Fatalf("partial %v", p)
				}
				if m.domains["echo"].h.metricVal["angzarr.cascade_refused.echo.depth"] != 1 ||
					m.domains["counter"].h.metricVal["angzarr.commands.counter.sync_failed"] != 1 {
					t.Fatal("metrics")
				}
				// A client cannot smuggle a command past the limit either.
				hdr := [][2]string{{CascadeDepthHeader, "2"}}
				wantCode(t, m.domains["echo"].sendWith(PathHandleSync, syncCmd("echo", 2, pb.SyncMode_SYNC_MODE_CASCADE, 1), hdr), FailedPrecondition, "2 saga hops deep")
				hdr = [][2]string{{CascadeDepthHeader, "x"}}
				wantCode(t, m.domains["echo"].sendWith(PathHandleSync, syncCmd("echo", 2, pb.SyncMode_SYNC_MODE_CASCADE, 1), hdr), InvalidArgument, "not a cascade depth")
				// Outside CASCADE the metadata means nothing.
				hdr = [][2]string{{CascadeDepthHeader, "9"}}
				wantCode(t, m.domains["echo"].sendWith(PathHandleSync, syncCmd("echo", 2, pb.SyncMode_SYNC_MODE_SIMPLE, 1), hdr), OK, "")
			}},
			{"CASCADE cycle", map[string]string{
				"counter": cfgCounter,
				"mirror":  `{"domains":["mirror"],"sagas":[{"name":"back","cluster":"saga-back","targets":["counter"]}],"coordinators":{"counter":"coord-counter"}}`,
			}, func(t *testing.T, m *mesh) {
				m.projectors["proj-summary"] = summary("summary")
				m.sagas["saga-copy"] = copySaga("mirror")
				m.sagas["saga-back"] = copySaga("counter")
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_CASCADE, 2))
				c1 := "counter/" + rootString(root(1).GetValue())
				wantCode(t, r, FailedPrecondition, "cascade cycle: aggregate "+c1+" is already in the cascade path "+c1+" -> mirror/")
				if len(m.stored("counter", 1)) != 1 || len(m.stored("mirror", 1)) != 1 {
					t.Fatal("stored")
				}
				if m.domains["counter"].h.metricVal["angzarr.cascade_refused.counter.cycle"] != 1 {
					t.Fatal("metrics")
				}
			}},
			{"a failing projector: events stored, the projector's status", map[string]string{"counter": cfgCounter}, func(t *testing.T, m *mesh) {
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_SIMPLE, 2, 3))
				wantCode(t, r, Unavailable, "the command's events were stored (counter/"+rootString(root(1).GetValue())+" sequences 0-1), but its synchronous part failed: synchronous projector summary failed (UNAVAILABLE): no healthy upstream")
				if !strings.Contains(r.message, "idempotency_key") || len(m.stored("counter", 1)) != 2 {
					t.Fatalf("%v", r)
				}
				p := partial(t, r.details)
				if len(p.GetEvents().GetPages()) != 2 || len(p.GetProjections()) != 0 {
					t.Fatalf("partial %v", p)
				}
				if m.domains["counter"].h.metricVal["angzarr.sync_projector_calls.summary.error"] != 1 {
					t.Fatal("metrics")
				}
				// Retrying with a key re-runs the sync part and stores nothing new.
				m.projectors["proj-summary"] = summary("summary")
				cb := &pb.CommandBook{Cover: &pb.Cover{Domain: "counter", Root: root(1)}, Pages: []*pb.CommandPage{counter.Command(1, 2)}, IdempotencyKey: "k1"}
				b, _ := proto.Marshal(&pb.SyncCommandBook{Command: cb, SyncMode: pb.SyncMode_SYNC_MODE_SIMPLE})
				wantCode(t, m.domains["counter"].send(PathHandleSync, grpcFrame(b)), OK, "")
				cb.Pages[0].Sequence = 3
				b, _ = proto.Marshal(&pb.SyncCommandBook{Command: cb, SyncMode: pb.SyncMode_SYNC_MODE_SIMPLE})
				r = m.domains["counter"].send(PathHandleSync, grpcFrame(b))
				wantCode(t, r, OK, "")
				if len(m.stored("counter", 1)) != 3 || len(r.resp.GetProjections()) != 1 || r.resp.GetEvents().GetPages()[0].GetNum() != 2 {
					t.Fatalf("repeat: stored %d, %v", len(m.stored("counter", 1)), r.resp)
				}
			}},
			{"a failing saga command in CASCADE", map[string]string{"counter": cfgCounter, "mirror": cfgMirror}, func(t *testing.T, m *mesh) {
				m.projectors["proj-summary"] = summary("summary")
				m.projectors["proj-mirror"] = summary("mirror-summary")
				m.sagas["saga-copy"] = func(b *pb.EventBook) (*pb.SagaResponse, *Status) {
					// -5 takes the new mirror counter below zero: rejected.
					return &pb.SagaResponse{Commands: []*pb.CommandBook{{
						Cover: &pb.Cover{Domain: "mirror", Root: root(1)}, Pages: []*pb.CommandPage{counter.Command(-5, 0)}}}}, nil
				}
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_CASCADE, 2))
				wantCode(t, r, FailedPrecondition, "saga copy: command 0 for mirror/"+rootString(root(1).GetValue())+" failed (FAILED_PRECONDITION)")
				if len(m.stored("counter", 1)) != 1 || len(m.stored("mirror", 1)) != 0 {
					t.Fatal("stored")
				}
				if p := partial(t, r.details); len(p.GetEvents().GetPages()) != 1 || len(p.GetProjections()) != 1 || len(p.GetCascade()) != 0 {
					t.Fatalf("partial %v", p)
				}
			}},
			{"a saga command outside the saga's targets", map[string]string{"counter": cfgCounter, "mirror": cfgMirror}, func(t *testing.T, m *mesh) {
				m.projectors["proj-summary"] = summary("summary")
				m.sagas["saga-copy"] = copySaga("elsewhere")
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_CASCADE, 2))
				wantCode(t, r, Internal, `domain "elsewhere", which is not one of its target domains [mirror]`)
			}},
			{"a failing saga", map[string]string{"counter": cfgCounter}, func(t *testing.T, m *mesh) {
				m.projectors["proj-summary"] = summary("summary")
				m.sagas["saga-copy"] = func(*pb.EventBook) (*pb.SagaResponse, *Status) { return nil, statusf(Unavailable, "saga down") }
				r := m.domains["counter"].send(PathHandleSync, syncCmd("counter", 1, pb.SyncMode_SYNC_MODE_CASCADE, 2))
				wantCode(t, r, Unavailable, "saga copy failed on event 0 (UNAVAILABLE): saga down")
				if m.domains["counter"].h.metricVal["angzarr.sync_saga_calls.copy.error"] != 1 {
					t.Fatal("metrics")
				}
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				m := newMesh(t, mode, tt.cfgs)
				tt.run(t, m)
				for _, hs := range m.domains {
					hs.checkNoLeaks(t)
				}
			})
		}
	})
}

func TestSagaOriginFallbackKey(t *testing.T) {
	b, _ := proto.Marshal(&pb.CommandBook{Cover: &pb.Cover{Domain: "mirror", Root: root(1)},
		SagaOrigin: &pb.SagaCommandOrigin{SagaName: "copy", TriggeringAggregate: &pb.Cover{Domain: "counter", Root: root(1)}, TriggeringEventSequence: 4}})
	cb, err := wire.DecodeCommandBook(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := idempotencyKey(cb), sagakey.Key("copy", "counter", root(1).GetValue(), 4, 0); got != want {
		t.Fatalf("fallback key %s, want %s", got, want)
	}
	cb.IdempotencyKey = "explicit"
	if idempotencyKey(cb) != "explicit" {
		t.Fatal("explicit key not kept")
	}
}
