package redis_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

// startWithReplica starts a redis-server and a replica of it and waits
// until the replica's link is up.
func startWithReplica(t *testing.T) (master, replica *testredis.Server) {
	t.Helper()
	master = testredis.StartServer(t, testredis.Options{AppendOnly: true})
	host, port, _ := strings.Cut(master.Addr(), ":")
	replica = testredis.StartServer(t, testredis.Options{AppendOnly: true, Args: []string{"--replicaof", host, port}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		info, err := testredis.Do(replica.Addr(), "INFO", "replication")
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return master, replica
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica never linked: %v %s", err, info)
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}

// TestUnconfirmedAppendIsUnavailableAndRetrySafe: on one Redis with a
// replica and min-replicas=1, an append the replica does not confirm is
// answered UNAVAILABLE saying its outcome is unknown, the fan-out does not
// get its log entry, and once the replica is back the retry with the same
// idempotency key answers the stored append (a duplicate, stored once),
// which the fan-out then gets.
// The replica timeout is generous: the happy path must not depend on how
// fast a loaded machine replicates (each unconfirmed call waits it out).
func TestUnconfirmedAppendIsUnavailableAndRetrySafe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	master, replica := startWithReplica(t)
	s := open(t, redis.Options{Addrs: []string{master.Addr()}, Partitions: 1, MinReplicas: 1, ReplicaTimeout: 2 * time.Second})
	agg := store.Aggregate{Domain: storetest.Domain(t), Root: uuid.New()}
	const sub = "proj"
	if _, err := s.(store.Checkpointer).OpenCheckpoint(ctx, sub, agg.Domain, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1, "a")}); err != nil {
		t.Fatalf("confirmed append: %v", err)
	}
	if err := replica.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	req := &store.AppendRequest{Aggregate: agg, Expected: 1, IdempotencyKey: "k", Pages: storetest.Pages(1, 1, "b")}
	_, err := s.Append(ctx, req)
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "may or may not be stored") ||
		!strings.Contains(err.Error(), "same idempotency key") {
		t.Fatalf("unconfirmed append: %v, want UNAVAILABLE with an unknown outcome", err)
	}
	if _, err := s.(store.Checkpointer).Fetch(ctx, sub, agg.Domain, 0, 10); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("fetch of unconfirmed entries: %v, want UNAVAILABLE", err)
	}
	if _, err := s.ReadLog(ctx, agg.Domain, 0, 0, 10); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("read of unconfirmed log entries: %v, want UNAVAILABLE", err)
	}
	if _, err := s.Load(ctx, agg, store.LoadQuery{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("load of an unconfirmed append: %v, want UNAVAILABLE", err)
	}
	if err := replica.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var res *store.AppendResult
	for res == nil { // the replica catches up: bounded by ctx
		res, err = s.Append(ctx, req)
		if err != nil && !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("retry: %v", err)
		}
	}
	if !res.Duplicate || res.First != 1 || res.Next != 2 || storetest.Text(t, res.Pages[0]) != "b-1" {
		t.Fatalf("retry with the same key: %+v, want the stored append", res)
	}
	l, err := s.Load(ctx, agg, store.LoadQuery{})
	if err != nil || l.Next != 2 {
		t.Fatalf("after the retry: next %v, %v; want 2 (stored once)", l, err)
	}
	entries, err := s.(store.Checkpointer).Fetch(ctx, sub, agg.Domain, 0, 10)
	if err != nil || len(entries) != 2 {
		t.Fatalf("fetch after the replica confirmed: %d entries, %v; want 2", len(entries), err)
	}
	if books, err := s.ReadLog(ctx, agg.Domain, 0, 0, 10); err != nil || len(books) != 2 {
		t.Fatalf("read log after the replica confirmed: %d entries, %v; want 2", len(books), err)
	}
}

// TestOpenChecksSettings: Open warns about each unsafe setting by name,
// and opens a server that refuses CONFIG with one warning saying so.
func TestOpenChecksSettings(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	srv := testredis.StartServer(t, testredis.Options{}) // appendonly no
	open(t, redis.Options{Addrs: []string{srv.Addr()}, Logger: log})
	if w := buf.String(); !strings.Contains(w, "unsafe setting: appendonly no") {
		t.Fatalf("no warning about appendonly:\n%s", w)
	}
	buf.Reset()
	locked := testredis.StartServer(t, testredis.Options{AppendOnly: true, Args: []string{"--rename-command", "CONFIG", ""}})
	open(t, redis.Options{Addrs: []string{locked.Addr()}, Logger: log})
	if w := buf.String(); !strings.Contains(w, "cannot read the server's settings") {
		t.Fatalf("no warning about the unreadable settings:\n%s", w)
	}
}
