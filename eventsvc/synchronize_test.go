package eventsvc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// TestSynchronizeWhileWriting: subscribers that start before, during and
// after concurrent writers see every event exactly once, each aggregate in
// order: replay and live tail meet without a gap or a duplicate.
func TestSynchronizeWhileWriting(t *testing.T) {
	for name, newURL := range backends(t) {
		t.Run(name, func(t *testing.T) {
			conn := eventsvctest.Dial(t, eventsvctest.Start(t, newURL(t)))
			es, eq := pb.NewEventStoreClient(conn), pb.NewEventQueryClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			const (
				writers   = 4
				perWriter = 3  // aggregates per writer
				rounds    = 25 // appends per aggregate
			)
			domain, cid := storetest.Domain(t), "sync-"+uuid.NewString()
			roots := make([]uuid.UUID, writers*perWriter)
			for i := range roots {
				roots[i] = uuid.New()
			}
			progress := make(chan struct{}, writers*perWriter*rounds)
			var wg sync.WaitGroup
			// One event before anything else, so every subscriber has history.
			if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, roots[0], cid), Pages: storetest.Pages(0, 1, roots[0].String())}); err != nil {
				t.Fatal(err)
			}
			startWriters := func() {
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						next := make([]uint32, perWriter)
						if w == 0 {
							next[0] = 1
						}
						for r := 0; r < rounds; r++ {
							for a := 0; a < perWriter; a++ {
								root := roots[w*perWriter+a]
								n := 1 + (r+a)%2
								resp, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, cid), ExpectedSequence: next[a], Pages: storetest.Pages(next[a], n, root.String())})
								if err != nil {
									t.Errorf("append: %v", err)
									return
								}
								next[a] = resp.GetNextSequence()
								progress <- struct{}{}
							}
						}
					}()
				}
			}

			type received struct {
				books []*pb.EventBook
				err   error
			}
			subscribe := func(q *pb.Query, want int) chan received {
				out := make(chan received, 1)
				stream, err := eq.Synchronize(ctx)
				if err == nil {
					err = stream.Send(q)
				}
				if err != nil {
					out <- received{err: err}
					return out
				}
				go func() {
					var r received
					n := 0
					for n < want {
						b, err := stream.Recv()
						if err != nil {
							r.err = fmt.Errorf("after %d of %d events: %w", n, want, err)
							break
						}
						r.books = append(r.books, b)
						n += len(b.GetPages())
					}
					out <- r
				}()
				return out
			}
			// Every writer's events plus the first one.
			want := 1
			for a := 0; a < writers*perWriter; a++ {
				for r := 0; r < rounds; r++ {
					want += 1 + (r+a%perWriter)%2
				}
			}
			aggWant := 1
			for r := 0; r < rounds; r++ {
				aggWant += 1 + r%2
			}

			before := subscribe(&pb.Query{Cover: &pb.Cover{Domain: domain}}, want)
			startWriters()
			// Start more subscribers once writes are under way.
			for i := 0; i < writers*perWriter*rounds/3; i++ {
				<-progress
			}
			during := subscribe(&pb.Query{Cover: &pb.Cover{Domain: domain}}, want)
			aggSub := subscribe(&pb.Query{Cover: cover(domain, roots[0], "")}, aggWant)
			corrSub := subscribe(&pb.Query{Cover: &pb.Cover{CorrelationId: cid}}, want)
			wg.Wait()
			after := subscribe(&pb.Query{Cover: &pb.Cover{Domain: domain}}, want)
			if t.Failed() {
				return
			}

			check := func(name string, r received, want int, roots []uuid.UUID) {
				t.Helper()
				if r.err != nil {
					t.Fatalf("%s: %v", name, r.err)
				}
				next := map[string]uint32{}
				n := 0
				for _, b := range r.books {
					root := uuid.UUID(b.GetCover().GetRoot().GetValue()).String()
					for _, p := range b.GetPages() {
						if p.GetNum() != next[root] {
							t.Fatalf("%s: %s got sequence %d, want %d (gap or duplicate)", name, root, p.GetNum(), next[root])
						}
						if storetest.Text(t, p) != fmt.Sprintf("%s-%d", root, p.GetNum()) {
							t.Fatalf("%s: payload %q", name, storetest.Text(t, p))
						}
						next[root]++
						n++
					}
				}
				if n != want {
					t.Fatalf("%s: %d events, want %d", name, n, want)
				}
				for _, root := range roots {
					if next[root.String()] == 0 {
						t.Fatalf("%s: nothing from %s", name, root)
					}
				}
			}
			b := <-before
			check("subscribed before writes", b, want, roots)
			check("subscribed during writes", <-during, want, roots)
			check("subscribed after writes", <-after, want, roots)
			check("correlation subscriber", <-corrSub, want, roots)
			check("aggregate subscriber", <-aggSub, aggWant, roots[:1])

			// Resuming a domain subscription after the positions of its first
			// half delivers exactly the second half.
			cut := len(b.books) / 2
			positions := map[uint32]uint64{}
			for _, bk := range b.books[:cut] {
				positions[bk.GetPosition().GetPartition()] = bk.GetPosition().GetOffset()
			}
			var resume []*pb.LogPosition
			for p, off := range positions {
				resume = append(resume, &pb.LogPosition{Partition: p, Offset: off})
			}
			rest := 0
			for _, bk := range b.books[cut:] {
				rest += len(bk.GetPages())
			}
			r := <-subscribe(&pb.Query{Cover: &pb.Cover{Domain: domain}, After: resume}, rest)
			if r.err != nil {
				t.Fatal(r.err)
			}
			seen := map[string]bool{}
			for _, bk := range b.books[cut:] {
				for _, p := range bk.GetPages() {
					seen[fmt.Sprint(bk.GetCover().GetRoot().GetValue(), p.GetNum())] = true
				}
			}
			for _, bk := range r.books {
				for _, p := range bk.GetPages() {
					k := fmt.Sprint(bk.GetCover().GetRoot().GetValue(), p.GetNum())
					if !seen[k] {
						t.Fatalf("resumed subscription delivered %v seq %d again or out of place", uuid.UUID(bk.GetCover().GetRoot().GetValue()), p.GetNum())
					}
					delete(seen, k)
				}
			}
			if len(seen) != 0 {
				t.Fatalf("resumed subscription missed %d events", len(seen))
			}
		})
	}
}

// TestSynchronizeAcrossReplicas: a subscriber on one eventsvc replica sees
// what is appended through another replica of the same Redis store.
func TestSynchronizeAcrossReplicas(t *testing.T) {
	url := "redis://" + testredis.Start(t) + "/0"
	a := pb.NewEventQueryClient(eventsvctest.Dial(t, eventsvctest.Start(t, url)))
	b := pb.NewEventStoreClient(eventsvctest.Dial(t, eventsvctest.Start(t, url)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	domain := storetest.Domain(t)
	stream, err := a.Synchronize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.Query{Cover: &pb.Cover{Domain: domain}}); err != nil {
		t.Fatal(err)
	}
	root := uuid.New()
	for i := uint32(0); i < 5; i++ {
		if _, err := b.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, ""), ExpectedSequence: i, Pages: storetest.Pages(i, 1, root.String())}); err != nil {
			t.Fatal(err)
		}
	}
	for want := uint32(0); want < 5; {
		bk, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", want, err)
		}
		for _, p := range bk.GetPages() {
			if p.GetNum() != want {
				t.Fatalf("got sequence %d, want %d", p.GetNum(), want)
			}
			want++
		}
	}
}
