package eventsvc_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// TestAggregateReadsCarryCorrelation: GetEvents and Synchronize on one
// aggregate return, with every page, the correlation id it was stored
// with (the cover of its book), on every backend.
func TestAggregateReadsCarryCorrelation(t *testing.T) {
	for name, newURL := range backends(t) {
		t.Run(name, func(t *testing.T) {
			conn := eventsvctest.Dial(t, eventsvctest.Start(t, newURL(t)))
			es, eq := pb.NewEventStoreClient(conn), pb.NewEventQueryClient(conn)
			ctx := tctx(t)
			domain, root := storetest.Domain(t), uuid.New()
			for i, cid := range []string{"w1", "w1", "w2", "w1"} {
				if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, cid), ExpectedSequence: uint32(i), Pages: storetest.Pages(uint32(i), 1, "a")}); err != nil {
					t.Fatal(err)
				}
			}
			runs := func(books []*pb.EventBook) string {
				var out []string
				for _, b := range books {
					if b.GetCover().GetDomain() != domain || !bytes.Equal(b.GetCover().GetRoot().GetValue(), root[:]) {
						t.Fatalf("cover %v", b.GetCover())
					}
					var seqs []string
					for _, p := range b.GetPages() {
						seqs = append(seqs, fmt.Sprint(p.GetNum()))
					}
					out = append(out, b.GetCover().GetCorrelationId()+":"+strings.Join(seqs, ","))
				}
				return strings.Join(out, " ")
			}
			stream, err := eq.GetEvents(ctx, &pb.Query{Cover: cover(domain, root, "")})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := runs(testutil.Collect(t, stream)), "w1:0,1 w2:2 w1:3"; got != want {
				t.Errorf("GetEvents: %s, want %s", got, want)
			}
			upper := uint32(2)
			stream, err = eq.GetEvents(ctx, &pb.Query{Cover: cover(domain, root, ""), Selection: &pb.Query_Range{Range: &pb.SequenceRange{Lower: 1, Upper: &upper}}})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := runs(testutil.Collect(t, stream)), "w1:1 w2:2"; got != want {
				t.Errorf("GetEvents 1..2: %s, want %s", got, want)
			}
			// Synchronize on the aggregate, up to its last event.
			sync, err := eq.Synchronize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			last := uint32(3)
			if err := sync.Send(&pb.Query{Cover: cover(domain, root, ""), Selection: &pb.Query_Range{Range: &pb.SequenceRange{Upper: &last}}}); err != nil {
				t.Fatal(err)
			}
			var books []*pb.EventBook
			for n := 0; n < 4; {
				b, err := sync.Recv()
				if err != nil {
					t.Fatal(err)
				}
				books = append(books, b)
				n += len(b.GetPages())
			}
			if got, want := runs(books), "w1:0,1 w2:2 w1:3"; got != want {
				t.Errorf("Synchronize: %s, want %s", got, want)
			}
		})
	}
}

// TestListRootsPages: ListRoots with a limit and a cursor pages a domain's
// roots in order; a bad cursor or limit is INVALID_ARGUMENT naming it.
func TestListRootsPages(t *testing.T) {
	for name, newURL := range backends(t) {
		t.Run(name, func(t *testing.T) {
			conn := eventsvctest.Dial(t, eventsvctest.Start(t, newURL(t)))
			es := pb.NewEventStoreClient(conn)
			ctx := tctx(t)
			domain := storetest.Domain(t)
			var want []string
			for range 11 {
				root := uuid.New()
				if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, "c"), Pages: storetest.Pages(0, 1, "a")}); err != nil {
					t.Fatal(err)
				}
				want = append(want, root.String())
			}
			slices.Sort(want) // the string form sorts as the bytes do
			var got []string
			var after *pb.AggregateRoot
			for pages := 0; ; pages++ {
				if pages > 4 {
					t.Fatalf("more than 4 pages of 3 for 11 roots: %v", got)
				}
				s, err := es.ListRoots(ctx, &pb.ListRootsRequest{Domain: domain, After: after, Limit: 3})
				if err != nil {
					t.Fatal(err)
				}
				page := testutil.Collect(t, s)
				if len(page) > 3 {
					t.Fatalf("%d roots for a limit of 3", len(page))
				}
				for _, r := range page {
					got = append(got, uuid.UUID(r.GetRoot().GetValue()).String())
				}
				if len(page) < 3 {
					break
				}
				after = page[len(page)-1]
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("paged: %v, want %v", got, want)
			}
			root := uuid.New()
			for _, tc := range []struct {
				req   *pb.ListRootsRequest
				field string
			}{
				{&pb.ListRootsRequest{Domain: domain, Limit: 1001}, "limit"},
				{&pb.ListRootsRequest{Domain: domain, After: &pb.AggregateRoot{Domain: "other", Root: &pb.UUID{Value: root[:]}}}, "after.domain"},
				{&pb.ListRootsRequest{After: &pb.AggregateRoot{Root: &pb.UUID{Value: root[:]}}}, "after.domain"},
				{&pb.ListRootsRequest{Domain: domain, After: &pb.AggregateRoot{Domain: domain, Root: &pb.UUID{Value: []byte{1}}}}, "after.root"},
			} {
				s, err := es.ListRoots(ctx, tc.req)
				if err == nil {
					_, err = s.Recv()
				}
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field+":") {
					t.Errorf("%v: want INVALID_ARGUMENT naming %s, got %v", tc.req, tc.field, err)
				}
			}
		})
	}
}
