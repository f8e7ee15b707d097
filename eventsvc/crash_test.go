package eventsvc_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ack is one acknowledged append.
type ack struct {
	root     uuid.UUID
	first, n uint32
}

// writeLoad appends from `writers` goroutines (two aggregates each)
// through addr until an append fails (the crash). It calls crash once
// `crashAfter` appends were acknowledged, while the writers keep going,
// and returns every acknowledged append.
func writeLoad(t *testing.T, addr, domain string, writers, crashAfter int, crash func()) []ack {
	t.Helper()
	conn := eventsvctest.Dial(t, addr)
	es := pb.NewEventStoreClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu    sync.Mutex
		acks  []ack
		wg    sync.WaitGroup
		count = make(chan struct{}, writers)
		stop  = make(chan struct{})
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			roots := []uuid.UUID{uuid.New(), uuid.New()}
			next := []uint32{0, 0}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := i % 2
				n := 1 + i%3
				resp, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, roots[a], "crash"), ExpectedSequence: next[a], Pages: storetest.Pages(next[a], n, roots[a].String())})
				if err != nil {
					return // the crash: the outcome of this append is unknown
				}
				mu.Lock()
				acks = append(acks, ack{roots[a], next[a], uint32(n)})
				mu.Unlock()
				next[a] = resp.GetNextSequence()
				select {
				case count <- struct{}{}:
				case <-stop:
					return
				}
			}
		}()
	}
	for i := 0; i < crashAfter; i++ {
		<-count
	}
	crash()
	// Drain until every writer has seen the crash.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-count:
			continue
		case <-done:
		}
		break
	}
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	return acks
}

// verify checks, through addr, that every acknowledged append is stored
// exactly once: each aggregate's pages are contiguous from 0, each page's
// payload is the one written for its sequence, and every acknowledged
// sequence is there.
func verify(t *testing.T, addr, domain string, acks []ack) {
	t.Helper()
	es := pb.NewEventStoreClient(eventsvctest.Dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := map[uuid.UUID]uint32{}
	for _, a := range acks {
		want[a.root] = max(want[a.root], a.first+a.n)
	}
	for root, acked := range want {
		l, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, "")})
		if err != nil {
			t.Fatalf("load %s after restart: %v", root, err)
		}
		if l.GetNextSequence() < acked {
			t.Fatalf("%s: next sequence %d after restart, but %d were acknowledged", root, l.GetNextSequence(), acked)
		}
		pages := l.GetBook().GetPages()
		if uint32(len(pages)) != l.GetNextSequence() {
			t.Fatalf("%s: %d pages, next sequence %d", root, len(pages), l.GetNextSequence())
		}
		for i, p := range pages {
			if p.GetNum() != uint32(i) || storetest.Text(t, p) != fmt.Sprintf("%s-%d", root, i) {
				t.Fatalf("%s: page %d is %d %q: duplicate or lost append", root, i, p.GetNum(), storetest.Text(t, p))
			}
		}
	}
	if len(acks) == 0 {
		t.Fatal("no append was acknowledged")
	}
	verifyLog(t, es, domain, want)
	t.Logf("%d acknowledged appends over %d aggregates survived", len(acks), len(want))
}

// verifyLog checks that the domain's log has, for every aggregate, entries
// whose pages tile its history exactly: no append stored without its log
// entry, no entry without its pages.
func verifyLog(t *testing.T, es pb.EventStoreClient, domain string, roots map[uuid.UUID]uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logged := map[uuid.UUID]uint32{}
	partitions := uint32(1)
	for p := uint32(0); p < partitions; p++ {
		after := uint64(0)
		for {
			resp, err := es.ReadLog(ctx, &pb.ReadLogRequest{Domain: domain, Partition: p, After: after})
			if err != nil {
				t.Fatalf("read log partition %d: %v", p, err)
			}
			partitions = resp.GetPartitions()
			if len(resp.GetBooks()) == 0 {
				break
			}
			for _, b := range resp.GetBooks() {
				root := uuid.UUID(b.GetCover().GetRoot().GetValue())
				for _, pg := range b.GetPages() {
					if pg.GetNum() != logged[root] {
						t.Fatalf("%s: the log has page %d where %d comes next", root, pg.GetNum(), logged[root])
					}
					logged[root]++
				}
				after = b.GetPosition().GetOffset()
			}
		}
	}
	for root, n := range logged {
		if _, ok := roots[root]; !ok {
			// An append whose acknowledgement was lost in the crash: its
			// pages must be stored too.
			l, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, "")})
			if err != nil || l.GetNextSequence() != n {
				t.Fatalf("%s: %d pages logged, next sequence %d (%v)", root, n, l.GetNextSequence(), err)
			}
		}
	}
	for root := range roots {
		l, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, "")})
		if err != nil {
			t.Fatal(err)
		}
		if logged[root] != l.GetNextSequence() {
			t.Fatalf("%s: %d pages logged, %d stored", root, logged[root], l.GetNextSequence())
		}
	}
}

// TestCrashEventsvc kills -9 the eventsvc process in the middle of a write
// load and restarts it on the same store.
func TestCrashEventsvc(t *testing.T) {
	for name, storeURL := range map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "events.db") },
		"redis": func(t *testing.T) string {
			return "redis://" + testredis.StartServer(t, testredis.Options{AppendOnly: true}).Addr() + "/0"
		},
	} {
		t.Run(name, func(t *testing.T) {
			url := storeURL(t)
			proc := eventsvctest.StartProcess(t, angzarrBin, url)
			domain := storetest.Domain(t)
			acks := writeLoad(t, proc.Addr(), domain, 8, 300, proc.Kill)
			proc.Restart()
			verify(t, proc.Addr(), domain, acks)
		})
	}
}

// TestCrashRedisServer kills -9 redis-server (appendonly yes, appendfsync
// always) in the middle of a write load and restarts it from its AOF.
func TestCrashRedisServer(t *testing.T) {
	srv := testredis.StartServer(t, testredis.Options{AppendOnly: true})
	addr := eventsvctest.Start(t, "redis://"+srv.Addr()+"/0")
	domain := storetest.Domain(t)
	acks := writeLoad(t, addr, domain, 8, 300, srv.Kill)
	srv.Restart()
	verify(t, addr, domain, acks)
}

// TestCrashGroupCommit kills -9 in the middle of group commits: 32 writers
// keep batches full, and on Redis one log partition puts every append of
// the domain in one slot, so that each pipeline's appends form one script
// call. The event service is killed (SQLite, Redis), and redis-server is
// killed (appendonly yes, appendfsync always) under an in-process event
// service. Every acknowledged append must be there, whole, with its log
// entry; an append whose acknowledgement was lost is there whole or not
// at all.
func TestCrashGroupCommit(t *testing.T) {
	const writers = 32
	t.Run("sqlite", func(t *testing.T) {
		proc := eventsvctest.StartProcess(t, angzarrBin, "sqlite:"+filepath.Join(t.TempDir(), "events.db"))
		domain := storetest.Domain(t)
		acks := writeLoad(t, proc.Addr(), domain, writers, 500, proc.Kill)
		proc.Restart()
		verify(t, proc.Addr(), domain, acks)
	})
	t.Run("redis", func(t *testing.T) {
		url := "redis://" + testredis.StartServer(t, testredis.Options{AppendOnly: true}).Addr() + "/0"
		proc := eventsvctest.StartProcess(t, angzarrBin, url, "--redis-partitions", "1")
		domain := storetest.Domain(t)
		acks := writeLoad(t, proc.Addr(), domain, writers, 500, proc.Kill)
		proc.Restart()
		verify(t, proc.Addr(), domain, acks)
	})
	t.Run("redis-server", func(t *testing.T) {
		srv := testredis.StartServer(t, testredis.Options{AppendOnly: true})
		addr := eventsvctest.StartConfig(t, eventsvc.Config{Store: "redis://" + srv.Addr() + "/0", RedisPartitions: 1})
		domain := storetest.Domain(t)
		acks := writeLoad(t, addr, domain, writers, 500, srv.Kill)
		srv.Restart()
		verify(t, addr, domain, acks)
	})
}
