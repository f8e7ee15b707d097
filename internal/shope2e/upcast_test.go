package shope2e_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/examples/go/product"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// TestOldProductHistoryDecidesThroughTheUpcaster: a product stored before
// ProductListed existed (its history is one ProductCreated, v1, written
// straight to the store as an old deployment would have) still decides
// correctly through the mesh: the product logic knows only v2 and would
// refuse SetPrice on a product it cannot see ("does not exist"); the event
// service upcasts v1 on Load (through the product proxy's filter) and on
// queries, while a raw query shows the stored v1 unchanged.
func TestOldProductHistoryDecidesThroughTheUpcaster(t *testing.T) {
	m := startMesh(t)
	ctx := ctxT(t, 2*time.Minute)
	root := uuid.New()
	//lint:ignore SA1019 the stored v1
	v1, err := anypb.New(&ex.ProductCreated{Sku: "OLD-1", Name: "Legacy mug", PriceCents: 1000})
	if err != nil {
		t.Fatal(err)
	}
	es := pb.NewEventStoreClient(m.conn(m.ep.EventService))
	if _, err := es.Append(ctx, &pb.AppendRequest{
		Cover: &pb.Cover{Domain: product.Domain, Root: &pb.UUID{Value: root[:]}},
		Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: v1}},
	}); err != nil {
		t.Fatalf("store the v1 history: %v", err)
	}

	resp := m.send(ctx, product.Domain, root, "", 1, &ex.SetPrice{PriceCents: 1200})
	events := flatten(t, []*pb.EventBook{resp.GetEvents()})
	if len(events) != 1 || !proto.Equal(events[0].msg, &ex.PriceSet{PriceCents: 1200, PreviousPriceCents: 1000}) {
		t.Fatalf("SetPrice on the v1 history decided %v, want PriceSet{1200, previous 1000}", events)
	}

	read := func(raw bool) []event {
		s, err := m.query().GetEvents(ctx, &pb.Query{Cover: &pb.Cover{Domain: product.Domain, Root: &pb.UUID{Value: root[:]}}, Raw: raw})
		if err != nil {
			t.Fatal(err)
		}
		return flatten(t, receiveAll(t, s))
	}
	want := &ex.ProductListed{Sku: "OLD-1", Name: "Legacy mug", Price: &ex.Money{Cents: 1000, Currency: product.Currency}}
	if got := read(false); len(got) != 2 || !proto.Equal(got[0].msg, want) {
		t.Errorf("query: %v, want ProductListed %v first", got, want)
	}
	if got := read(true); len(got) != 2 || got[0].typeName() != "ProductCreated" {
		t.Errorf("raw query: %v, want the stored ProductCreated first", got)
	}
}
