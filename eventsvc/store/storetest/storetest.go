// Package storetest is the conformance suite every event store backend
// passes: Run(t, newStore) exercises the semantics documented in package
// store against a real backend.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// NewStore returns a store for one test. Tests use fresh domains, so a store
// may share its storage with other tests; the suite closes nothing, the
// constructor registers its own cleanup.
type NewStore func(t *testing.T) store.Store

// Run runs the whole suite against the backend.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"AppendAndLoad", testAppendAndLoad},
		{"Conflict", testConflict},
		{"InvalidNum", testInvalidNum},
		{"Force", testForce},
		{"Snapshot", testSnapshot},
		{"Idempotency", testIdempotency},
		{"Select", testSelect},
		{"Correlation", testCorrelation},
		{"RangeCorrelation", testRangeCorrelation},
		{"Roots", testRoots},
		{"RootsPaged", testRootsPaged},
		{"Log", testLog},
		{"Limits", testLimits},
		{"ConcurrentSameExpected", testConcurrentSameExpected},
		{"GroupCommit", testGroupCommit},
		{"LongHistory", testLongHistory},
		{"PagedLoad", testPagedLoad},
		{"PagedLoadSnapshotAndPrior", testPagedLoadSnapshotAndPrior},
		{"PagedLoadBounds", testPagedLoadBounds},
		{"HistoryBound", testHistoryBound},
		{"Checkpoints", testCheckpoints},
		{"TraceContext", testTraceContext},
		{"DeadLetters", testDeadLetters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// Domain returns a domain name unique to this test run.
func Domain(t testing.TB) string {
	return "d" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
}

// Event returns an event payload with text.
func Event(text string) *anypb.Any {
	a, err := anypb.New(wrapperspb.String(text))
	if err != nil {
		panic(err)
	}
	return a
}

// Pages returns n sequenced pages numbered from first, with payloads
// prefix-<seq>.
func Pages(first uint32, n int, prefix string) []*pb.EventPage {
	out := make([]*pb.EventPage, n)
	for i := range out {
		seq := first + uint32(i)
		out[i] = &pb.EventPage{Sequence: &pb.EventPage_Num{Num: seq}, Event: Event(fmt.Sprintf("%s-%d", prefix, seq))}
	}
	return out
}

// Text returns the payload text of a page made by Pages or Event.
func Text(t testing.TB, p *pb.EventPage) string {
	t.Helper()
	var s wrapperspb.StringValue
	if err := p.GetEvent().UnmarshalTo(&s); err != nil {
		t.Fatalf("page %d: %v", p.GetNum(), err)
	}
	return s.GetValue()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func newAgg(t *testing.T) store.Aggregate {
	return store.Aggregate{Domain: Domain(t), Root: uuid.New()}
}

func mustAppend(t *testing.T, s store.Store, req *store.AppendRequest) *store.AppendResult {
	t.Helper()
	res, err := s.Append(ctx(t), req)
	if err != nil {
		t.Fatalf("append to %s at %d: %v", req.Aggregate, req.Expected, err)
	}
	return res
}

// checkSeqs fails unless pages are numbered first, first+1, ... with texts
// prefix-<seq> and a creation time.
func checkSeqs(t *testing.T, pages []*pb.EventPage, first uint32, n int, prefix string) {
	t.Helper()
	if len(pages) != n {
		t.Fatalf("got %d pages, want %d", len(pages), n)
	}
	for i, p := range pages {
		want := first + uint32(i)
		if _, ok := p.GetSequence().(*pb.EventPage_Num); !ok || p.GetNum() != want {
			t.Fatalf("page %d: sequence %v, want num %d", i, p.GetSequence(), want)
		}
		if prefix != "" {
			if got := Text(t, p); got != fmt.Sprintf("%s-%d", prefix, want) {
				t.Fatalf("page %d: payload %q, want %s-%d", i, got, prefix, want)
			}
		}
		if p.GetCreatedAt() == nil || p.GetCreatedAt().AsTime().Before(time.Now().Add(-time.Hour)) {
			t.Fatalf("page %d: created_at %v not set by the store", i, p.GetCreatedAt())
		}
	}
}

func testAppendAndLoad(t *testing.T, s store.Store) {
	agg := newAgg(t)
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Next != 0 || len(l.Pages) != 0 || l.Snapshot != nil || l.Prior != nil {
		t.Fatalf("new aggregate loaded as %+v", l)
	}
	res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, CorrelationID: "c1", Pages: Pages(0, 3, "a")})
	if res.First != 0 || res.Next != 3 || res.Duplicate {
		t.Fatalf("first append: %+v", res)
	}
	checkSeqs(t, res.Pages, 0, 3, "a")
	// Pages without a sequence are numbered by the store.
	res = mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 3, Pages: []*pb.EventPage{{Event: Event("a-3")}, {Event: Event("a-4")}}})
	if res.First != 3 || res.Next != 5 {
		t.Fatalf("second append: %+v", res)
	}
	l, err = load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Next != 5 || l.Snapshot != nil {
		t.Fatalf("load: next %d snapshot %v", l.Next, l.Snapshot)
	}
	checkSeqs(t, l.Pages, 0, 5, "a")
	if !l.Pages[3].GetCreatedAt().AsTime().Equal(res.Pages[0].GetCreatedAt().AsTime()) {
		t.Fatalf("created_at differs between append result %v and load %v", res.Pages[0].GetCreatedAt(), l.Pages[3].GetCreatedAt())
	}
}

func testConflict(t *testing.T, s store.Store) {
	agg := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 2, "a")})
	for _, expected := range []uint32{0, 1, 3, 100} {
		_, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Expected: expected, Pages: Pages(expected, 1, "x")})
		var ce *store.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("expected %d: got %v, want a conflict", expected, err)
		}
		if ce.Next != 2 || ce.Expected != expected || ce.Aggregate != agg {
			t.Fatalf("conflict %+v, want next 2 expected %d", ce, expected)
		}
	}
	// A snapshot-only append is checked too.
	_, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Expected: 1, Snapshot: Event("s")})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale snapshot-only append: %v", err)
	}
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Snapshot != nil {
		t.Fatal("conflicting append stored a snapshot")
	}
	checkSeqs(t, l.Pages, 0, 2, "a")
}

func testInvalidNum(t *testing.T, s store.Store) {
	agg := newAgg(t)
	pages := Pages(0, 3, "a")
	pages[2].Sequence = &pb.EventPage_Num{Num: 7}
	_, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Pages: pages})
	var ie *store.InvalidError
	if !errors.As(err, &ie) || ie.Field != "pages[2].num" {
		t.Fatalf("got %v, want invalid pages[2].num", err)
	}
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Next != 0 || len(l.Pages) != 0 {
		t.Fatalf("an invalid append stored %d pages", len(l.Pages))
	}
}

func testForce(t *testing.T, s store.Store) {
	agg := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 2, "a")})
	force := func(text string) *pb.EventPage {
		return &pb.EventPage{Sequence: &pb.EventPage_Force{Force: true}, Event: Event(text)}
	}
	// Only force pages: appended at the end whatever the expected sequence.
	res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 0, Pages: []*pb.EventPage{force("a-2"), force("a-3")}})
	if res.First != 2 || res.Next != 4 {
		t.Fatalf("force append: %+v", res)
	}
	checkSeqs(t, res.Pages, 2, 2, "a")
	// A force page beside a sequenced one does not lift the check.
	_, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Expected: 1, Pages: []*pb.EventPage{force("x"), {Event: Event("y")}}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("mixed append with stale expected: %v", err)
	}
	res = mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 4, Pages: []*pb.EventPage{force("a-4"), {Sequence: &pb.EventPage_Num{Num: 5}, Event: Event("a-5")}}})
	checkSeqs(t, res.Pages, 4, 2, "a")
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, l.Pages, 0, 6, "a")
}

func testSnapshot(t *testing.T, s store.Store) {
	agg := newAgg(t)
	res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 3, "a"), Snapshot: Event("state@3")})
	if res.Next != 3 {
		t.Fatalf("next %d", res.Next)
	}
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Snapshot.GetSequence() != 3 || !proto.Equal(l.Snapshot.GetState(), Event("state@3")) || len(l.Pages) != 0 || l.Next != 3 {
		t.Fatalf("after snapshot: snapshot %v, %d pages, next %d", l.Snapshot, len(l.Pages), l.Next)
	}
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 3, Pages: Pages(3, 2, "a")})
	l, err = load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Snapshot.GetSequence() != 3 || l.Next != 5 {
		t.Fatalf("snapshot %v next %d", l.Snapshot, l.Next)
	}
	checkSeqs(t, l.Pages, 3, 2, "a")
	// A later snapshot replaces it; a snapshot-only append covers everything.
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 5, Snapshot: Event("state@5")})
	l, err = load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Snapshot.GetSequence() != 5 || !proto.Equal(l.Snapshot.GetState(), Event("state@5")) || len(l.Pages) != 0 || l.Next != 5 {
		t.Fatalf("after snapshot-only append: %v, %d pages, next %d", l.Snapshot, len(l.Pages), l.Next)
	}
	// The history itself is still all there.
	all, err := store.Select(ctx(t), s, agg, store.All())
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, store.Pages(all), 0, 5, "a")
}

func testIdempotency(t *testing.T, s store.Store) {
	agg := newAgg(t)
	first := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 2, "a"), IdempotencyKey: "k1", CorrelationID: "c"})
	if first.Duplicate {
		t.Fatal("first append reported duplicate")
	}
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 2, Pages: Pages(2, 1, "a")})
	// The repeat carries a stale expected sequence: it is still a duplicate,
	// not a conflict, and stores nothing.
	again := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 2, "zz"), IdempotencyKey: "k1"})
	if !again.Duplicate || again.First != 0 || again.Next != 2 {
		t.Fatalf("repeat: %+v", again)
	}
	checkSeqs(t, again.Pages, 0, 2, "a")
	for i := range again.Pages {
		if !proto.Equal(again.Pages[i], first.Pages[i]) {
			t.Fatalf("repeat page %d = %v, want %v", i, again.Pages[i], first.Pages[i])
		}
	}
	if again.Position.GetOffset() != first.Position.GetOffset() || again.Position.GetPartition() != first.Position.GetPartition() {
		t.Fatalf("repeat position %v, want %v", again.Position, first.Position)
	}
	l, err := load(t, s, agg, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if l.Next != 3 || l.Prior == nil || !l.Prior.Duplicate || l.Prior.Next != 2 {
		t.Fatalf("load with key: next %d prior %+v", l.Next, l.Prior)
	}
	checkSeqs(t, l.Prior.Pages, 0, 2, "a")
	if l, err = load(t, s, agg, "unknown"); err != nil || l.Prior != nil {
		t.Fatalf("load with unknown key: prior %v err %v", l.Prior, err)
	}
	// Keys are per aggregate.
	other := newAgg(t)
	if res := mustAppend(t, s, &store.AppendRequest{Aggregate: other, Pages: Pages(0, 1, "b"), IdempotencyKey: "k1"}); res.Duplicate {
		t.Fatal("a key of another aggregate counted as duplicate")
	}
	// A conflicting append does not record its key.
	if _, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Expected: 0, Pages: Pages(0, 1, "x"), IdempotencyKey: "k2"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale append with new key: %v", err)
	}
	res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 3, Pages: Pages(3, 1, "a"), IdempotencyKey: "k2"})
	if res.Duplicate || res.First != 3 {
		t.Fatalf("append with key after its conflict: %+v", res)
	}
	// A snapshot-only append with a key is idempotent as well.
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 4, Snapshot: Event("s"), IdempotencyKey: "k3"})
	if res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 4, Snapshot: Event("s"), IdempotencyKey: "k3"}); !res.Duplicate || res.Next != 4 || len(res.Pages) != 0 {
		t.Fatalf("repeat of snapshot-only append: %+v", res)
	}
}

func testSelect(t *testing.T, s store.Store) {
	agg := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 5, "a")})
	// Make sure the next append gets a later creation time.
	cut := time.Now()
	for !time.Now().After(cut.Add(2 * time.Millisecond)) {
		time.Sleep(time.Millisecond) // the store's clock must move on; not a readiness wait
	}
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 5, Pages: Pages(5, 5, "a")})
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	asOf := l.Pages[4].GetCreatedAt().AsTime()
	cases := []struct {
		name string
		sel  store.Selection
		want []uint32
	}{
		{"all", store.All(), []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"range", store.Selection{Lo: 3, Hi: 6}, []uint32{3, 4, 5, 6}},
		{"range open", store.Selection{Lo: 8, Hi: math.MaxUint32}, []uint32{8, 9}},
		{"range past end", store.Selection{Lo: 20, Hi: math.MaxUint32}, nil},
		{"set", store.Selection{Set: []uint32{9, 2, 40, 4}}, []uint32{2, 4, 9}},
		{"empty set", store.Selection{Set: []uint32{}}, nil},
		{"as of sequence", store.Selection{Lo: 0, Hi: 6}, []uint32{0, 1, 2, 3, 4, 5, 6}},
		{"as of time", store.Selection{Lo: 0, Hi: math.MaxUint32, AsOf: asOf}, []uint32{0, 1, 2, 3, 4}},
		{"before everything", store.Selection{Lo: 0, Hi: math.MaxUint32, AsOf: time.Unix(1, 0)}, nil},
	}
	for _, tc := range cases {
		books, err := store.Select(ctx(t), s, agg, tc.sel)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		pages := store.Pages(books)
		var got []uint32
		for _, p := range pages {
			got = append(got, p.GetNum())
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// An unknown aggregate has no events.
	if pages, err := store.Select(ctx(t), s, newAgg(t), store.All()); err != nil || len(pages) != 0 {
		t.Fatalf("unknown aggregate: %d pages, %v", len(pages), err)
	}
}

func testCorrelation(t *testing.T, s store.Store) {
	cid := "corr-" + uuid.NewString()
	a, b := newAgg(t), store.Aggregate{Domain: Domain(t), Root: uuid.New()}
	c := store.Aggregate{Domain: a.Domain, Root: uuid.New()}
	mustAppend(t, s, &store.AppendRequest{Aggregate: a, CorrelationID: cid, Pages: Pages(0, 2, "a")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: b, CorrelationID: "other", Pages: Pages(0, 1, "b")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: b, Expected: 1, CorrelationID: cid, Pages: Pages(1, 2, "b")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: c, CorrelationID: cid, Pages: Pages(0, 1, "c")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: a, Expected: 2, CorrelationID: cid, Pages: Pages(2, 1, "a")})
	books, err := s.ByCorrelation(ctx(t), cid)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, bk := range books {
		if bk.GetCover().GetCorrelationId() != cid {
			t.Fatalf("book cover %v", bk.GetCover())
		}
		for _, p := range bk.GetPages() {
			got = append(got, Text(t, p))
		}
	}
	want := []string{"a-0", "a-1", "b-1", "b-2", "c-0", "a-2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("by correlation: %v, want %v", got, want)
	}
	if books[0].GetCover().GetDomain() != a.Domain || string(books[0].GetCover().GetRoot().GetValue()) != string(a.Root[:]) {
		t.Fatalf("first book cover %v, want %s", books[0].GetCover(), a)
	}
	if books, err := s.ByCorrelation(ctx(t), "nobody-"+uuid.NewString()); err != nil || len(books) != 0 {
		t.Fatalf("unknown correlation: %v %v", books, err)
	}
}

// testRangeCorrelation: an aggregate's history read by sequence carries
// the correlation id every page was stored with, as books of consecutive
// pages of one correlation id.
func testRangeCorrelation(t *testing.T, s store.Store) {
	agg := newAgg(t)
	c1, c2 := "corr-"+uuid.NewString(), "corr-"+uuid.NewString()
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, CorrelationID: c1, Pages: Pages(0, 2, "a")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 2, CorrelationID: c2, Pages: Pages(2, 1, "a")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 3, CorrelationID: c1, Pages: Pages(3, 1, "a")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 4, CorrelationID: c1, Pages: Pages(4, 1, "a")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 5, Pages: Pages(5, 1, "a")})
	runs := func(books []*pb.EventBook) string {
		var out []string
		for _, b := range books {
			c := b.GetCover()
			if c.GetDomain() != agg.Domain || string(c.GetRoot().GetValue()) != string(agg.Root[:]) {
				t.Fatalf("book cover %v, want %s", c, agg)
			}
			var seqs []uint32
			for _, p := range b.GetPages() {
				seqs = append(seqs, p.GetNum())
			}
			name := map[string]string{c1: "c1", c2: "c2", "": "none"}[c.GetCorrelationId()]
			if name == "" {
				t.Fatalf("book with correlation id %q", c.GetCorrelationId())
			}
			out = append(out, fmt.Sprintf("%s%v", name, seqs))
		}
		return strings.Join(out, " ")
	}
	cases := []struct {
		name string
		sel  store.Selection
		want string
	}{
		{"all", store.All(), "c1[0 1] c2[2] c1[3 4] none[5]"},
		{"range", store.Selection{Lo: 1, Hi: 3}, "c1[1] c2[2] c1[3]"},
		{"set", store.Selection{Set: []uint32{0, 3, 5}}, "c1[0 3] none[5]"},
	}
	for _, tc := range cases {
		books, err := store.Select(ctx(t), s, agg, tc.sel)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := runs(books); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	books, err := s.Range(ctx(t), agg, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := runs(books); got != "c2[2]" {
		t.Errorf("range 2..2: %s", got)
	}
}

// testRootsPaged: Roots pages by a cursor and a limit, within a domain and
// across domains, in the same order as one listing.
func testRootsPaged(t *testing.T, s store.Store) {
	d1, d2 := Domain(t), Domain(t)
	if d2 < d1 {
		d1, d2 = d2, d1
	}
	var want []store.Aggregate
	for _, d := range []string{d1, d2} {
		for i := 0; i < 7; i++ {
			agg := store.Aggregate{Domain: d, Root: uuid.New()}
			mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 1, "r")})
			want = append(want, agg)
		}
	}
	slices.SortFunc(want, store.Aggregate.Compare)
	mine := map[store.Aggregate]bool{}
	for _, a := range want {
		mine[a] = true
	}
	// page lists domain (or every domain) 3 at a time from after, keeping
	// this test's aggregates (other tests may share the store).
	page := func(domain string, after store.Aggregate) []store.Aggregate {
		var got []store.Aggregate
		for {
			roots, err := s.Roots(ctx(t), domain, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(roots) > 3 {
				t.Fatalf("%d roots for a limit of 3", len(roots))
			}
			for _, r := range roots {
				if r.Compare(after) <= 0 {
					t.Fatalf("root %v listed after %v", r, after)
				}
				after = r
				if mine[r] {
					got = append(got, r)
				}
			}
			if len(roots) < 3 {
				return got
			}
		}
	}
	if got := page(d1, store.Aggregate{}); fmt.Sprint(got) != fmt.Sprint(want[:7]) {
		t.Fatalf("%s paged: %v, want %v", d1, got, want[:7])
	}
	// From the middle of a domain: the rest of it only.
	if got := page(d2, want[9]); fmt.Sprint(got) != fmt.Sprint(want[10:]) {
		t.Fatalf("%s after %v: %v, want %v", d2, want[9], got, want[10:])
	}
	// Every domain, from within d1: the rest of d1, then d2.
	if got := page("", want[4]); fmt.Sprint(got) != fmt.Sprint(want[5:]) {
		t.Fatalf("every domain after %v: %v, want %v", want[4], got, want[5:])
	}
	// A cursor past the domain lists nothing; one before it lists it all.
	last := store.Aggregate{Domain: d1, Root: uuid.Max}
	if roots, err := s.Roots(ctx(t), d1, last, 3); err != nil || len(roots) != 0 {
		t.Fatalf("after the last possible root: %v %v", roots, err)
	}
	if roots, err := s.Roots(ctx(t), d2, store.Aggregate{Domain: d1, Root: uuid.Max}, 1); err != nil || len(roots) != 1 || roots[0] != want[7] {
		t.Fatalf("d2 after a cursor in d1: %v %v, want %v", roots, err, want[7])
	}
	// Pages larger than a partition's share of them (a backend that
	// merges partitions reads in rounds), in order, none left out.
	big := Domain(t)
	var many []store.Aggregate
	for range 300 {
		agg := store.Aggregate{Domain: big, Root: uuid.New()}
		mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 1, "r")})
		many = append(many, agg)
	}
	slices.SortFunc(many, store.Aggregate.Compare)
	var got []store.Aggregate
	for after := (store.Aggregate{}); ; {
		roots, err := s.Roots(ctx(t), big, after, 70)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, roots...)
		if len(roots) < 70 {
			break
		}
		after = roots[len(roots)-1]
	}
	if fmt.Sprint(got) != fmt.Sprint(many) {
		t.Fatalf("300 roots paged by 70: %d, out of order or missing", len(got))
	}
	if all, err := s.Roots(ctx(t), big, store.Aggregate{}, store.RootsLimit); err != nil || fmt.Sprint(all) != fmt.Sprint(many) {
		t.Fatalf("300 roots in one page: %d, %v", len(all), err)
	}
}

func testRoots(t *testing.T, s store.Store) {
	d1, d2 := Domain(t), Domain(t)
	want := map[store.Aggregate]bool{}
	for i := 0; i < 5; i++ {
		for _, d := range []string{d1, d2} {
			agg := store.Aggregate{Domain: d, Root: uuid.New()}
			mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 1, "r")})
			mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 1, Pages: Pages(1, 1, "r")})
			want[agg] = true
		}
	}
	roots, err := s.Roots(ctx(t), d1, store.Aggregate{}, store.RootsLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 5 {
		t.Fatalf("domain %s: %d roots, want 5", d1, len(roots))
	}
	for i, r := range roots {
		if r.Domain != d1 || !want[r] {
			t.Fatalf("unexpected root %v", r)
		}
		if i > 0 && strings.Compare(string(roots[i-1].Root[:]), string(r.Root[:])) >= 0 {
			t.Fatalf("roots not sorted: %v", roots)
		}
	}
	all, err := store.AllRoots(ctx(t), s, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, r := range all {
		if want[r] {
			seen++
		}
	}
	if seen != 10 {
		t.Fatalf("all roots: found %d of 10 of this test's aggregates among %d", seen, len(all))
	}
}

func testLog(t *testing.T, s store.Store) {
	domain := Domain(t)
	aggs := make([]store.Aggregate, 6)
	next := make([]uint32, len(aggs))
	for i := range aggs {
		aggs[i] = store.Aggregate{Domain: domain, Root: uuid.New()}
	}
	positions := map[uint32][]uint64{}
	for round := 0; round < 4; round++ {
		for i, agg := range aggs {
			res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: next[i], CorrelationID: fmt.Sprint("c", round), Pages: Pages(next[i], 1+i%3, agg.Root.String())})
			next[i] = res.Next
			p := res.Position.GetPartition()
			if p >= s.Partitions() {
				t.Fatalf("partition %d of %d", p, s.Partitions())
			}
			if prev := positions[p]; len(prev) > 0 && res.Position.GetOffset() <= prev[len(prev)-1] {
				t.Fatalf("partition %d: offset %d after %d", p, res.Position.GetOffset(), prev[len(prev)-1])
			}
			positions[p] = append(positions[p], res.Position.GetOffset())
		}
	}
	// Another domain's events never show up.
	mustAppend(t, s, &store.AppendRequest{Aggregate: newAgg(t), Pages: Pages(0, 1, "x")})

	// Read every partition in small batches from the start: every page once,
	// each aggregate in order.
	seen := map[uuid.UUID]uint32{}
	total := 0
	for p := uint32(0); p < s.Partitions(); p++ {
		var after uint64
		for {
			books, err := s.ReadLog(ctx(t), domain, p, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(books) == 0 {
				break
			}
			if len(books) > 3 {
				t.Fatalf("limit 3 returned %d entries", len(books))
			}
			for _, b := range books {
				if b.GetPosition().GetPartition() != p || b.GetPosition().GetOffset() <= after {
					t.Fatalf("position %v after %d in partition %d", b.GetPosition(), after, p)
				}
				after = b.GetPosition().GetOffset()
				if b.GetCover().GetDomain() != domain || !strings.HasPrefix(b.GetCover().GetCorrelationId(), "c") {
					t.Fatalf("cover %v", b.GetCover())
				}
				root := uuid.UUID(b.GetCover().GetRoot().GetValue())
				for _, pg := range b.GetPages() {
					if pg.GetNum() != seen[root] {
						t.Fatalf("%s: got sequence %d, want %d", root, pg.GetNum(), seen[root])
					}
					if Text(t, pg) != fmt.Sprintf("%s-%d", root, pg.GetNum()) {
						t.Fatalf("payload %q", Text(t, pg))
					}
					seen[root]++
					total++
				}
			}
		}
	}
	want := 0
	for i, agg := range aggs {
		if seen[agg.Root] != next[i] {
			t.Fatalf("%s: log has %d events, want %d", agg, seen[agg.Root], next[i])
		}
		want += int(next[i])
	}
	if total != want {
		t.Fatalf("log has %d events, want %d", total, want)
	}
	// Reading after the last position returns nothing.
	for p, offs := range positions {
		if books, err := s.ReadLog(ctx(t), domain, p, offs[len(offs)-1], 10); err != nil || len(books) != 0 {
			t.Fatalf("after the end of partition %d: %d books, %v", p, len(books), err)
		}
	}
	if _, err := s.ReadLog(ctx(t), domain, s.Partitions(), 0, 10); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("partition out of range: %v", err)
	}
}

func testLimits(t *testing.T, s store.Store) {
	agg := newAgg(t)
	cases := []struct {
		name  string
		req   *store.AppendRequest
		field string
	}{
		{"bad domain", &store.AppendRequest{Aggregate: store.Aggregate{Domain: "a{b}", Root: uuid.New()}, Pages: Pages(0, 1, "a")}, "cover.domain"},
		{"empty domain", &store.AppendRequest{Aggregate: store.Aggregate{Root: uuid.New()}, Pages: Pages(0, 1, "a")}, "cover.domain"},
		{"no pages", &store.AppendRequest{Aggregate: agg}, "pages"},
		{"too many pages", &store.AppendRequest{Aggregate: agg, Pages: Pages(0, store.DefaultMaxPages+1, "a")}, "pages"},
		{"no event", &store.AppendRequest{Aggregate: agg, Pages: []*pb.EventPage{{}}}, "pages[0].event"},
		{"event too large", &store.AppendRequest{Aggregate: agg, Pages: []*pb.EventPage{{Event: Event(strings.Repeat("x", store.DefaultMaxEventBytes))}}}, "pages[0].event"},
		{"snapshot too large", &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 1, "a"), Snapshot: Event(strings.Repeat("x", store.DefaultMaxEventBytes))}, "snapshot_state"},
		{"long key", &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 1, "a"), IdempotencyKey: strings.Repeat("k", 300)}, "idempotency_key"},
		{"bad correlation", &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 1, "a"), CorrelationID: "\xff"}, "cover.correlation_id"},
	}
	for _, tc := range cases {
		_, err := s.Append(ctx(t), tc.req)
		var ie *store.InvalidError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("%s: got %v, want an invalid %s", tc.name, err, tc.field)
		}
	}
	if l, err := load(t, s, agg, ""); err != nil || l.Next != 0 {
		t.Fatalf("invalid appends stored something: next %d, %v", l.Next, err)
	}
	// The largest allowed append goes through whole.
	res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, store.DefaultMaxPages, "a")})
	if res.Next != store.DefaultMaxPages {
		t.Fatalf("next %d", res.Next)
	}
}

// testConcurrentSameExpected: 64 writers append at the same expected
// sequence; exactly one wins, every other gets a conflict naming the
// winner's next sequence, and the history has no gap and no duplicate.
func testConcurrentSameExpected(t *testing.T, s store.Store) {
	const writers = 64
	agg := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: Pages(0, 2, "seed")})
	var (
		wg        sync.WaitGroup
		start     = make(chan struct{})
		mu        sync.Mutex
		winners   []int
		conflicts int
		others    []error
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Expected: 2, Pages: Pages(2, 2, fmt.Sprint("w", w))})
			mu.Lock()
			defer mu.Unlock()
			var ce *store.ConflictError
			switch {
			case err == nil:
				winners = append(winners, w)
			case errors.As(err, &ce) && ce.Next == 4:
				conflicts++
			default:
				others = append(others, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || conflicts != writers-1 || len(others) != 0 {
		t.Fatalf("winners %v, conflicts %d, other errors %v", winners, conflicts, others)
	}
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Next != 4 {
		t.Fatalf("next %d, want 4", l.Next)
	}
	checkSeqs(t, l.Pages[:2], 0, 2, "seed")
	checkSeqs(t, l.Pages[2:], 2, 2, fmt.Sprint("w", winners[0]))
}

// testGroupCommit: 64 appends released together, as a group-committing
// backend batches them: appends to fresh aggregates, stale appends that
// conflict, one idempotency key raced by 16 writers, and force pages raced
// by 16 writers on one aggregate. Every append gets its own answer and
// the failing ones leave their neighbours untouched.
func testGroupCommit(t *testing.T, s store.Store) {
	const group = 16
	domain := Domain(t)
	agg := func() store.Aggregate { return store.Aggregate{Domain: domain, Root: uuid.New()} }
	var (
		fresh, stale  = make([]store.Aggregate, group), make([]store.Aggregate, group)
		keyed, forced = agg(), agg()
		freshErr      = make([]error, group)
		staleErr      = make([]error, group)
		keyedRes      = make([]*store.AppendResult, group)
		keyedErr      = make([]error, group)
		forcedErr     = make([]error, group)
		wg            sync.WaitGroup
		start         = make(chan struct{})
	)
	for i := 0; i < group; i++ {
		fresh[i], stale[i] = agg(), agg()
		wg.Add(4)
		go func() {
			defer wg.Done()
			<-start
			if _, freshErr[i] = s.Append(ctx(t), &store.AppendRequest{Aggregate: fresh[i], Pages: Pages(0, 2, "fresh")}); freshErr[i] == nil {
				_, freshErr[i] = s.Append(ctx(t), &store.AppendRequest{Aggregate: fresh[i], Expected: 2, Pages: Pages(2, 1, "fresh")})
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			_, staleErr[i] = s.Append(ctx(t), &store.AppendRequest{Aggregate: stale[i], Expected: 5, Pages: Pages(5, 1, "stale")})
		}()
		go func() {
			defer wg.Done()
			<-start
			keyedRes[i], keyedErr[i] = s.Append(ctx(t), &store.AppendRequest{Aggregate: keyed, IdempotencyKey: "once", Pages: Pages(0, 3, fmt.Sprint("k", i))})
		}()
		go func() {
			defer wg.Done()
			<-start
			_, forcedErr[i] = s.Append(ctx(t), &store.AppendRequest{Aggregate: forced,
				Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Force{Force: true}, Event: Event(fmt.Sprint("f", i))}}})
		}()
	}
	close(start)
	wg.Wait()

	for i := 0; i < group; i++ {
		if freshErr[i] != nil || forcedErr[i] != nil || keyedErr[i] != nil {
			t.Fatalf("writer %d: fresh %v, forced %v, keyed %v", i, freshErr[i], forcedErr[i], keyedErr[i])
		}
		var ce *store.ConflictError
		if !errors.As(staleErr[i], &ce) || ce.Next != 0 || ce.Aggregate != stale[i] {
			t.Fatalf("stale writer %d: %v, want a conflict with next 0", i, staleErr[i])
		}
		l, err := load(t, s, fresh[i], "")
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, l.Pages, 0, 3, "fresh")
		if l, err := load(t, s, stale[i], ""); err != nil || l.Next != 0 || len(l.Pages) != 0 {
			t.Fatalf("stale aggregate after its conflict: %v, %+v", err, l)
		}
	}

	// The key: one append stored, every other writer got its result.
	var winner int = -1
	for i, r := range keyedRes {
		if !r.Duplicate {
			if winner >= 0 {
				t.Fatalf("writers %d and %d both stored with one idempotency key", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("every keyed append was a duplicate: none stored")
	}
	for i, r := range keyedRes {
		if r.First != 0 || r.Next != 3 || len(r.Pages) != 3 || r.Position.GetOffset() != keyedRes[winner].Position.GetOffset() {
			t.Fatalf("keyed writer %d: %+v, winner %d: %+v", i, r, winner, keyedRes[winner])
		}
		checkSeqs(t, r.Pages, 0, 3, fmt.Sprint("k", winner))
	}
	l, err := load(t, s, keyed, "")
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, l.Pages, 0, 3, fmt.Sprint("k", winner))

	// The force pages: each writer's page exactly once, contiguous.
	l, err = load(t, s, forced, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, p := range l.Pages {
		if p.GetNum() != uint32(i) || seen[Text(t, p)] {
			t.Fatalf("forced page %d: num %d, %q (seen before: %v)", i, p.GetNum(), Text(t, p), seen[Text(t, p)])
		}
		seen[Text(t, p)] = true
	}
	if len(seen) != group || l.Next != group {
		t.Fatalf("forced: %d distinct pages, next %d, want %d", len(seen), l.Next, group)
	}
}

// load is s.Load of the whole history; when s is a store.EncodedLoader,
// LoadEncoded must give the same answer with the pages encoded (checked
// here, every time).
func load(t *testing.T, s store.Store, agg store.Aggregate, key string) (*store.Loaded, error) {
	t.Helper()
	return loadQ(t, s, agg, store.LoadQuery{IdempotencyKey: key})
}

// loadQ is load with a query (a bounded page, a continuation).
func loadQ(t *testing.T, s store.Store, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	t.Helper()
	l, err := s.Load(ctx(t), agg, q)
	if err != nil {
		return l, err
	}
	if l.Encoded != nil {
		t.Fatalf("load %s: Load set Encoded", agg)
	}
	el, ok := s.(store.EncodedLoader)
	if !ok {
		return l, nil
	}
	e, err := el.LoadEncoded(ctx(t), agg, q)
	if err != nil {
		t.Fatalf("load %s encoded: %v", agg, err)
	}
	pages, err := e.AllPages()
	if err != nil {
		t.Fatalf("load %s encoded: decode: %v", agg, err)
	}
	if len(pages) != e.PageCount() || e.Pages != nil {
		t.Fatalf("load %s encoded: %d pages decoded, %d counted, %d decoded pages set", agg, len(pages), e.PageCount(), len(e.Pages))
	}
	e.Pages, e.Encoded, e.EncodedCount = pages, nil, 0
	if e.Next != l.Next || e.More != l.More || !proto.Equal(e.Snapshot, l.Snapshot) || !proto.Equal(&pb.EventBook{Pages: e.Pages}, &pb.EventBook{Pages: l.Pages}) ||
		(e.Prior == nil) != (l.Prior == nil) {
		t.Fatalf("load %s: LoadEncoded %+v differs from Load %+v", agg, e, l)
	}
	return l, nil
}

// testLongHistory: loads of histories longer than a backend may return in
// one piece (300 pages; 70 after a snapshot; 5 after a later one) come
// back whole and in order.
func testLongHistory(t *testing.T, s store.Store) {
	agg := newAgg(t)
	for seq := uint32(0); seq < 300; seq += 100 {
		mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: seq, Pages: Pages(seq, 100, "h")})
	}
	l, err := load(t, s, agg, "")
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, l.Pages, 0, 300, "h")
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 300, Snapshot: Event("state@300")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 300, Pages: Pages(300, 70, "h")})
	if l, err = load(t, s, agg, ""); err != nil {
		t.Fatal(err)
	}
	if l.Snapshot.GetSequence() != 300 || l.Next != 370 {
		t.Fatalf("snapshot %v, next %d", l.Snapshot, l.Next)
	}
	checkSeqs(t, l.Pages, 300, 70, "h")
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 370, Pages: Pages(370, 5, "h"), Snapshot: Event("state@375")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 375, Pages: Pages(375, 5, "h")})
	if l, err = load(t, s, agg, ""); err != nil {
		t.Fatal(err)
	}
	if l.Snapshot.GetSequence() != 375 || l.Next != 380 {
		t.Fatalf("snapshot %v, next %d", l.Snapshot, l.Next)
	}
	checkSeqs(t, l.Pages, 375, 5, "h")
}

// bigPages returns n pages numbered from first whose events are about size
// bytes each (payload prefix-<seq> padded), for paged loads.
func bigPages(first uint32, n, size int, prefix string) []*pb.EventPage {
	out := Pages(first, n, prefix)
	for i, p := range out {
		p.Event = Event(fmt.Sprintf("%s-%d~%s", prefix, first+uint32(i), strings.Repeat("x", size)))
	}
	return out
}

// pagedText is Text of a page made by bigPages, without its padding.
func pagedText(t testing.TB, p *pb.EventPage) string {
	s, _, _ := strings.Cut(Text(t, p), "~")
	return s
}

// loadPaged loads agg's history page by page with at most maxBytes per
// page, as an EventStore.Load client does, checking each page against the
// bound; it returns the first page (its pages replaced by all of them)
// and the number of pages.
func loadPaged(t *testing.T, s store.Store, agg store.Aggregate, key string, maxBytes int) (*store.Loaded, int) {
	t.Helper()
	first, err := loadQ(t, s, agg, store.LoadQuery{IdempotencyKey: key, MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	all := slices.Clone(first.Pages)
	checkPageBytes(t, first, maxBytes)
	n := 1
	for more := first.More; more != 0; n++ {
		if n > 10000 {
			t.Fatalf("%s: paging does not end", agg)
		}
		if want := first.Pages[0].GetNum() + uint32(len(all)); more != want {
			t.Fatalf("%s: page %d continues from %d, want %d", agg, n, more, want)
		}
		l, err := loadQ(t, s, agg, store.LoadQuery{From: more, To: first.Next, MaxBytes: maxBytes})
		if err != nil {
			t.Fatal(err)
		}
		if l.Snapshot != nil || l.Prior != nil || l.Next != first.Next || len(l.Pages) == 0 {
			t.Fatalf("%s: continuation from %d: snapshot %v, prior %v, next %d (want %d), %d pages", agg, more, l.Snapshot, l.Prior, l.Next, first.Next, len(l.Pages))
		}
		checkPageBytes(t, l, maxBytes)
		all = append(all, l.Pages...)
		more = l.More
	}
	first.Pages, first.More = all, 0
	return first, n
}

// checkPageBytes fails when a page with more than one event holds more
// bytes than maxBytes (store.EventBytes of each event, the snapshot's
// state): within a few bytes per event, as backends count what they store.
func checkPageBytes(t *testing.T, l *store.Loaded, maxBytes int) {
	t.Helper()
	size := proto.Size(l.Snapshot.GetState())
	for _, p := range l.Pages {
		size += store.EventBytes(proto.Size(p.GetEvent()))
	}
	if maxBytes > 0 && len(l.Pages) > 1 && size > maxBytes+32*len(l.Pages) {
		t.Fatalf("a page of %d events holds %d bytes, more than its bound of %d", len(l.Pages), size, maxBytes)
	}
}

// testPagedLoad: a history longer than a page comes in pages bounded in
// bytes, each continuing where the last one stopped, together exactly
// the history (also past the 64 pages Redis returns inline); a history
// within the bound is one page.
func testPagedLoad(t *testing.T, s store.Store) {
	agg := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: bigPages(0, 10, 1000, "p")})
	l, n := loadPaged(t, s, agg, "", 3500)
	if n < 3 || l.Next != 10 {
		t.Fatalf("10 events of 1 KB in pages of 3.5 KB: %d pages, next %d", n, l.Next)
	}
	for i, p := range l.Pages {
		if p.GetNum() != uint32(i) || pagedText(t, p) != fmt.Sprint("p-", i) {
			t.Fatalf("page %d: %d %q", i, p.GetNum(), pagedText(t, p))
		}
	}
	// Within the bound: one page, as without one.
	if l, n = loadPaged(t, s, agg, "", 1<<20); n != 1 || len(l.Pages) != 10 {
		t.Fatalf("within the bound: %d pages of %d events", n, len(l.Pages))
	}
	// Many small events, past what a backend returns in one piece.
	long := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: long, Pages: bigPages(0, 300, 100, "q")})
	if l, n = loadPaged(t, s, long, "", 10000); n < 3 || len(l.Pages) != 300 {
		t.Fatalf("300 events of 100 bytes in pages of 10 KB: %d pages, %d events", n, len(l.Pages))
	}
	for i, p := range l.Pages {
		if p.GetNum() != uint32(i) || pagedText(t, p) != fmt.Sprint("q-", i) {
			t.Fatalf("page %d: %d %q", i, p.GetNum(), pagedText(t, p))
		}
	}
	if l, n = loadPaged(t, s, long, "", 0); n != 1 || len(l.Pages) != 300 {
		t.Fatalf("unbounded: %d pages of %d events", n, len(l.Pages))
	}
	// An event larger than the bound is a page of its own.
	huge := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: huge, Pages: bigPages(0, 3, 5000, "h")})
	l, err := loadQ(t, s, huge, store.LoadQuery{MaxBytes: 1000})
	if err != nil || len(l.Pages) != 1 || l.More != 1 || l.Next != 3 {
		t.Fatalf("events beyond the bound: %+v, %v", l, err)
	}
	if l, n = loadPaged(t, s, huge, "", 1000); n != 3 || len(l.Pages) != 3 {
		t.Fatalf("3 events beyond the bound: %d pages, %d events", n, len(l.Pages))
	}
}

// testPagedLoadSnapshotAndPrior: the first page carries the snapshot
// (counted against the bound) and the idempotency lookup; continuations
// carry neither.
func testPagedLoadSnapshotAndPrior(t *testing.T, s store.Store) {
	agg := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: bigPages(0, 4, 1000, "s")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 4, Pages: bigPages(4, 2, 1000, "s"),
		Snapshot: Event("state@6~" + strings.Repeat("y", 2500)), IdempotencyKey: "k"})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 6, Pages: bigPages(6, 6, 1000, "s")})
	first, err := loadQ(t, s, agg, store.LoadQuery{IdempotencyKey: "k", MaxBytes: 3500})
	if err != nil {
		t.Fatal(err)
	}
	// 2.5 KB of snapshot leave room for one event of 1 KB.
	if first.Snapshot.GetSequence() != 6 || len(first.Pages) != 1 || first.Pages[0].GetNum() != 6 || first.More != 7 || first.Next != 12 {
		t.Fatalf("first page: snapshot %v, %d events, more %d, next %d", first.Snapshot, len(first.Pages), first.More, first.Next)
	}
	if first.Prior == nil || first.Prior.First != 4 || len(first.Prior.Pages) != 2 {
		t.Fatalf("first page: prior %+v", first.Prior)
	}
	l, n := loadPaged(t, s, agg, "k", 3500)
	if n < 3 || len(l.Pages) != 6 || l.Pages[0].GetNum() != 6 || l.Pages[5].GetNum() != 11 || l.Prior == nil {
		t.Fatalf("after the snapshot: %d pages, %d events, prior %v", n, len(l.Pages), l.Prior)
	}
}

// testPagedLoadBounds: a continuation stops at To (events appended after
// the first page are not in it), and one asked past the end returns what
// there is and no further page.
func testPagedLoadBounds(t *testing.T, s store.Store) {
	agg := newAgg(t)
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Pages: bigPages(0, 6, 1000, "b")})
	first, err := loadQ(t, s, agg, store.LoadQuery{MaxBytes: 2100})
	if err != nil || first.More == 0 {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 6, Pages: bigPages(6, 4, 1000, "b")})
	var got []*pb.EventPage
	for more := first.More; more != 0; {
		l, err := loadQ(t, s, agg, store.LoadQuery{From: more, To: first.Next, MaxBytes: 2100})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Pages...)
		more = l.More
	}
	if len(first.Pages)+len(got) != 6 || got[len(got)-1].GetNum() != 5 {
		t.Fatalf("continuations to 6 after 4 more were appended: %d + %d events", len(first.Pages), len(got))
	}
	// Past the end (a client's mistake): the events there are, and no more.
	l, err := loadQ(t, s, agg, store.LoadQuery{From: 8, To: 50, MaxBytes: 1 << 20})
	if err != nil || len(l.Pages) != 2 || l.More != 0 || l.Next != 50 {
		t.Fatalf("continuation past the end: %+v, %v", l, err)
	}
	l, err = loadQ(t, s, agg, store.LoadQuery{From: 20, To: 50, MaxBytes: 100})
	if err != nil || len(l.Pages) != 0 || l.More != 0 {
		t.Fatalf("continuation beyond the end: %+v, %v", l, err)
	}
}

// testHistoryBound (issue #18, five ~1 MB events): with the default
// limits an append without a snapshot that would take the events after
// the snapshot beyond 4 MiB is refused with a *HistoryError and stores
// nothing; an append with a snapshot starts the history afresh.
func testHistoryBound(t *testing.T, s store.Store) {
	agg := newAgg(t)
	mb := func(seq uint32) []*pb.EventPage {
		return []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: seq}, Event: Event(fmt.Sprintf("mb-%d~%s", seq, strings.Repeat("m", 1000000)))}}
	}
	for seq := uint32(0); seq < 4; seq++ {
		mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: seq, Pages: mb(seq)})
	}
	_, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Expected: 4, Pages: mb(4), IdempotencyKey: "fifth"})
	var he *store.HistoryError
	if !errors.As(err, &he) || he.Bytes < 4000000 || he.Adding < 1000000 || he.Limit != store.DefaultMaxHistoryBytes || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("fifth 1 MB event: %v", err)
	}
	if l, err := load(t, s, agg, "fifth"); err != nil || l.Next != 4 || l.Prior != nil {
		t.Fatalf("after the refused append: %+v, %v", l, err)
	}
	// A snapshot (with a small event) starts afresh: 1 MB fits again.
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 4, Pages: Pages(4, 1, "s"), Snapshot: Event("state@5")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, Expected: 5, Pages: mb(5)})
}
