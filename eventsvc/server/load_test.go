package server_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/server"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/sqlite"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// renaming is a decorator that changes pages on Load (as upcasters do)
// and has no LoadEncoded.
type renaming struct{ store.Store }

func (r renaming) Load(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	l, err := r.Store.Load(ctx, agg, q)
	if err == nil {
		for _, p := range l.Pages {
			p.Event = storetest.Event("renamed")
		}
	}
	return l, err
}

// TestLoadSendsEncodedPages: over a store with LoadEncoded the response
// carries the pages encoded and a client reads them as pages; over a
// decorator that changes pages and has no LoadEncoded, the server uses its
// Load and the changed pages go out.
func TestLoadSendsEncodedPages(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	domain := storetest.Domain(t)
	root := uuid.New()
	if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: store.Aggregate{Domain: domain, Root: root}, Pages: storetest.Pages(0, 3, "p")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		st      store.Store
		encoded bool
		text    func(seq int) string
	}{
		{"encoded", st, true, func(seq int) string { return "p-" + string(rune('0'+seq)) }},
		{"decorated", renaming{st}, false, func(int) string { return "renamed" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, err := server.New(c.st, server.Options{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Load(ctx, &pb.LoadRequest{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resp.GetBook().ProtoReflect().GetUnknown()) > 0; got != c.encoded {
				t.Fatalf("pages sent encoded: %v, want %v", got, c.encoded)
			}
			b, err := proto.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			var got pb.LoadResponse
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			pages := got.GetBook().GetPages()
			if len(pages) != 3 || got.GetNextSequence() != 3 {
				t.Fatalf("%d pages, next %d", len(pages), got.GetNextSequence())
			}
			for i, p := range pages {
				if p.GetNum() != uint32(i) || storetest.Text(t, p) != c.text(i) {
					t.Fatalf("page %d: %d %q, want %q", i, p.GetNum(), storetest.Text(t, p), c.text(i))
				}
			}
		})
	}
}
