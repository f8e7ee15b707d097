package upcast_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/sqlite"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/upcast"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Event versions for the tests, as well-known wrapper types: v1 is a
// StringValue, v2 an Int32Value, v3 an Int64Value.
const (
	v1 = "google.protobuf.StringValue"
	v2 = "google.protobuf.Int32Value"
	v3 = "google.protobuf.Int64Value"
)

// fakeUpcaster answers with conv of each event and counts its calls.
type fakeUpcaster struct {
	pb.UnimplementedUpcasterServer
	conv  func(*anypb.Any) *anypb.Any
	calls int
	sizes []int
}

func (f *fakeUpcaster) Upcast(_ context.Context, req *pb.UpcastRequest) (*pb.UpcastResponse, error) {
	f.calls++
	f.sizes = append(f.sizes, len(req.GetEvents()))
	out := &pb.UpcastResponse{}
	for _, e := range req.GetEvents() {
		if c := f.conv(e); c != nil {
			out.Events = append(out.Events, c)
		}
	}
	return out, nil
}

// serve runs u on a real gRPC server and returns its address.
func serve(t testing.TB, u pb.UpcasterServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterUpcasterServer(s, u)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func mustAny(t testing.TB, v any) *anypb.Any {
	t.Helper()
	var a *anypb.Any
	var err error
	switch v := v.(type) {
	case string:
		a, err = anypb.New(wrapperspb.String(v))
	case int32:
		a, err = anypb.New(wrapperspb.Int32(v))
	case int64:
		a, err = anypb.New(wrapperspb.Int64(v))
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// toV2 turns "n" strings into Int32Value(len(n)); toV3 Int32Value(n) into
// Int64Value(n*10).
func toV2(a *anypb.Any) *anypb.Any {
	s := &wrapperspb.StringValue{}
	_ = a.UnmarshalTo(s)
	out, _ := anypb.New(wrapperspb.Int32(int32(len(s.GetValue()))))
	return out
}

func toV3(a *anypb.Any) *anypb.Any {
	i := &wrapperspb.Int32Value{}
	_ = a.UnmarshalTo(i)
	out, _ := anypb.New(wrapperspb.Int64(int64(i.GetValue()) * 10))
	return out
}

type fixture struct {
	st  *upcast.Store
	tab *upcast.Table
	agg store.Aggregate
}

// newFixture stores history in domain "d" of a real SQLite store and
// decorates it.
func newFixture(t testing.TB, history ...*anypb.Any) fixture {
	t.Helper()
	ctx := t.Context()
	b, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	agg := store.Aggregate{Domain: "d", Root: uuid.New()}
	var pages []*pb.EventPage
	for i, e := range history {
		pages = append(pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: uint32(i)}, Event: e})
	}
	if _, err := b.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: pages}); err != nil {
		t.Fatal(err)
	}
	tab := upcast.NewTable(upcast.Options{})
	t.Cleanup(tab.Close)
	return fixture{st: upcast.New(b, tab), tab: tab, agg: agg}
}

func config(ups ...*pb.UpcasterEndpoint) *pb.FanoutConfig {
	return &pb.FanoutConfig{Domains: []*pb.DomainEndpoint{{Domain: "d", Address: "127.0.0.1:1", Upcasters: ups}}}
}

func types(pages []*pb.EventPage) []string {
	var out []string
	for _, p := range pages {
		u := p.GetEvent().GetTypeUrl()
		out = append(out, u[strings.LastIndex(u, "/")+1:])
	}
	return out
}

func TestChainRunsInOneCallPerUpcaster(t *testing.T) {
	f := newFixture(t, mustAny(t, "abc"), mustAny(t, int32(7)), mustAny(t, "hello"), mustAny(t, int64(1)))
	a, b := &fakeUpcaster{conv: toV2}, &fakeUpcaster{conv: toV3}
	if err := f.tab.Apply(config(
		&pb.UpcasterEndpoint{Address: serve(t, a), Types: []string{v1}},
		&pb.UpcasterEndpoint{Address: serve(t, b), Types: []string{v2}},
	)); err != nil {
		t.Fatal(err)
	}
	l, err := f.st.Load(t.Context(), f.agg, store.LoadQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := types(l.Pages); strings.Join(got, ",") != strings.Join([]string{v3, v3, v3, v3}, ",") {
		t.Fatalf("types after Load = %v, want every page v3", got)
	}
	want := []int64{30, 70, 50, 1}
	for i, p := range l.Pages {
		v := &wrapperspb.Int64Value{}
		if err := p.GetEvent().UnmarshalTo(v); err != nil || v.GetValue() != want[i] {
			t.Errorf("page %d = %v (%v), want %d", i, v.GetValue(), err, want[i])
		}
		if p.GetNum() != uint32(i) || p.GetCreatedAt() == nil {
			t.Errorf("page %d lost its sequence or time: %v", i, p)
		}
	}
	// a: one call with both v1 events; b: one call with the stored v2 and
	// the two a produced.
	if a.calls != 1 || a.sizes[0] != 2 || b.calls != 1 || b.sizes[0] != 3 {
		t.Errorf("calls: a %d %v, b %d %v; want each once, with 2 and 3 events", a.calls, a.sizes, b.calls, b.sizes)
	}

	raw, err := f.st.Range(store.WithRaw(t.Context()), f.agg, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := types(store.Pages(raw)); got[0] != v1 || got[1] != v2 {
		t.Errorf("raw Range = %v, want the stored versions", got)
	}
	again, err := f.st.Range(t.Context(), f.agg, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := types(store.Pages(again)); got[0] != v3 {
		t.Errorf("Range = %v, want upcast", got)
	}
}

func TestBadAnswersFailTheRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		conv func(*anypb.Any) *anypb.Any
		want string
	}{
		{"answers fewer events", func(*anypb.Any) *anypb.Any { return nil }, "answered 0 events for 1"},
		{"answers a type it declares", func(a *anypb.Any) *anypb.Any { return a }, "a type it declares"},
		{"answers no type", func(*anypb.Any) *anypb.Any { return &anypb.Any{} }, "without a type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, mustAny(t, "abc"))
			if err := f.tab.Apply(config(&pb.UpcasterEndpoint{Address: serve(t, &fakeUpcaster{conv: tc.conv}), Types: []string{v1}})); err != nil {
				t.Fatal(err)
			}
			_, err := f.st.Load(t.Context(), f.agg, store.LoadQuery{})
			if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want UNAVAILABLE saying %q", err, tc.want)
			}
		})
	}
}

func TestLoopBetweenUpcastersFailsTheRead(t *testing.T) {
	f := newFixture(t, mustAny(t, "abc"))
	back := func(a *anypb.Any) *anypb.Any { return mustAny(t, "x") } // v2 -> v1
	if err := f.tab.Apply(config(
		&pb.UpcasterEndpoint{Address: serve(t, &fakeUpcaster{conv: toV2}), Types: []string{v1}},
		&pb.UpcasterEndpoint{Address: serve(t, &fakeUpcaster{conv: back}), Types: []string{v2}},
	)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Load(t.Context(), f.agg, store.LoadQuery{}); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("Load: %v, want UNAVAILABLE naming a loop", err)
	}
}

func TestUnreachableUpcasterFailsTheRead(t *testing.T) {
	f := newFixture(t, mustAny(t, "abc"), mustAny(t, int64(3)))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	if err := f.tab.Apply(config(&pb.UpcasterEndpoint{Address: addr, Types: []string{v1}})); err != nil {
		t.Fatal(err)
	}
	_, err = f.st.Load(t.Context(), f.agg, store.LoadQuery{})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Load: %v, want UNAVAILABLE naming %s", err, addr)
	}
	// Another domain, and the raw form, do not need it.
	if _, err := f.st.Range(store.WithRaw(t.Context()), f.agg, 0, 5); err != nil {
		t.Errorf("raw Range: %v", err)
	}
}

func TestCheckRefusesBadUpcasters(t *testing.T) {
	tab := upcast.NewTable(upcast.Options{})
	defer tab.Close()
	for _, tc := range []struct {
		name string
		ups  []*pb.UpcasterEndpoint
		want string
	}{
		{"no port", []*pb.UpcasterEndpoint{{Address: "upcaster", Types: []string{v1}}}, "want host:port"},
		{"no type", []*pb.UpcasterEndpoint{{Address: "u:1"}}, "declares no type"},
		{"bad type", []*pb.UpcasterEndpoint{{Address: "u:1", Types: []string{"not a type"}}}, "not a message name"},
		{"type twice", []*pb.UpcasterEndpoint{{Address: "u:1", Types: []string{v1}}, {Address: "v:1", Types: []string{v1}}}, "already upcast by u:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(tc.ups...)
			if err := tab.Check(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want %q", err, tc.want)
			}
			if err := tab.Apply(cfg); err == nil {
				t.Error("Apply took it")
			}
		})
	}
}

// An upcast page is built anew from the stored page's fields (call): a
// field added to EventPage must be carried there too.
func TestEventPageFieldsAreCarried(t *testing.T) {
	fields := (&pb.EventPage{}).ProtoReflect().Descriptor().Fields()
	var names []string
	for i := range fields.Len() {
		names = append(names, string(fields.Get(i).Name()))
	}
	if got := strings.Join(names, ","); got != "num,force,created_at,event" {
		t.Fatalf("EventPage has fields %s: carry the new ones in upcast's call", got)
	}
}

// LoadEncoded passes the stored bytes through only when nothing of the
// domain is upcast (or the read is raw); otherwise it is Load, upcast.
func TestLoadEncodedUpcastsWhenItMust(t *testing.T) {
	f := newFixture(t, mustAny(t, "abc"))
	l, err := f.st.LoadEncoded(t.Context(), f.agg, store.LoadQuery{})
	if err != nil || l.Encoded == nil || l.PageCount() != 1 {
		t.Fatalf("no upcasters: %v %+v, want the encoded pages", err, l)
	}
	if err := f.tab.Apply(config(&pb.UpcasterEndpoint{Address: serve(t, &fakeUpcaster{conv: toV2}), Types: []string{v1}})); err != nil {
		t.Fatal(err)
	}
	l, err = f.st.LoadEncoded(t.Context(), f.agg, store.LoadQuery{})
	if err != nil || l.Encoded != nil || len(l.Pages) != 1 || types(l.Pages)[0] != v2 {
		t.Fatalf("with an upcaster: %v %+v, want the decoded, upcast page", err, l)
	}
	l, err = f.st.LoadEncoded(store.WithRaw(t.Context()), f.agg, store.LoadQuery{})
	if err != nil || l.Encoded == nil {
		t.Fatalf("raw: %v %+v, want the stored bytes", err, l)
	}
	pages, err := l.AllPages()
	if err != nil || types(pages)[0] != v1 {
		t.Fatalf("raw pages %v %v, want the stored v1", pages, err)
	}
}

// A paged load is upcast page by page: the first page and every
// continuation; without upcasters the pages stay encoded.
func TestPagedLoadUpcastsEveryPage(t *testing.T) {
	f := newFixture(t, mustAny(t, "abc"), mustAny(t, "defgh"), mustAny(t, "ij"), mustAny(t, "klmno"))
	q := store.LoadQuery{MaxBytes: 60}
	l, err := f.st.LoadEncoded(t.Context(), f.agg, q)
	if err != nil || l.Encoded == nil || l.More == 0 {
		t.Fatalf("no upcasters: %v %+v, want a first encoded page", err, l)
	}
	if err := f.tab.Apply(config(&pb.UpcasterEndpoint{Address: serve(t, &fakeUpcaster{conv: toV2}), Types: []string{v1}})); err != nil {
		t.Fatal(err)
	}
	var all []*pb.EventPage
	for {
		l, err := f.st.LoadEncoded(t.Context(), f.agg, q)
		if err != nil || l.Encoded != nil {
			t.Fatalf("page from %d: %v %+v, want decoded, upcast pages", q.From, err, l)
		}
		all = append(all, l.Pages...)
		if l.More == 0 {
			break
		}
		q = store.LoadQuery{From: l.More, To: 4, MaxBytes: 60}
	}
	if got := strings.Join(types(all), ","); got != strings.Join([]string{v2, v2, v2, v2}, ",") || q.From == 0 {
		t.Fatalf("types of the paged history: %s (continued: %v)", got, q.From != 0)
	}
}
