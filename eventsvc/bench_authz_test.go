package eventsvc_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

// authzBenchClients is the client count the issue's target is set at.
const authzBenchClients = 16

// BenchmarkAuthorization measures Append throughput at 16 clients through
// an event service with mTLS and authorization against a plaintext one,
// both on the same redis-server in the same run, and prints the ratio
// (target >= 0.85): the median of 12 pairs of windows (testutil.Pairs).
func BenchmarkAuthorization(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs a fixed load once: use -benchtime 1x")
	}
	redisSrv := testredis.StartServer(b, testredis.Options{})
	url := "redis://" + redisSrv.Addr() + "/0"
	dir := b.TempDir()
	domain := storetest.Domain(b)

	ca, err := identity.NewCA("angzarr.bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	issue := func(ns, sa string) identity.Config {
		is, err := ca.Issue(ns, sa, time.Time{}, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		c, err := ca.WriteFiles(filepath.Join(dir, "certs"), sa, is)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	fanoutFile := filepath.Join(dir, "fanout.yaml")
	policy := fmt.Sprintf("access:\n  domains:\n    - domain: %s\n      writers: [spiffe://angzarr.bench/ns/shop/sa/writer]\n", domain)
	if err := os.WriteFile(fanoutFile, []byte(policy), 0o644); err != nil {
		b.Fatal(err)
	}
	plainAddr := eventsvctest.StartConfig(b, eventsvc.Config{Store: url, Fanout: fanoutFile})
	secureAddr := eventsvctest.StartConfig(b, eventsvc.Config{Store: url, Identity: issue("angzarr-system", "angzarr-eventsvc"), Fanout: fanoutFile})
	plain := dialN(b, plainAddr, 4)
	writer := issue("shop", "writer")
	files, err := identity.LoadFiles(writer.CertFile, writer.KeyFile, writer.CAFile, "")
	if err != nil {
		b.Fatal(err)
	}
	secure := make([]*grpc.ClientConn, 4)
	for i := range secure {
		c, err := grpc.NewClient(secureAddr, identity.DialOption(files, identity.ID{}))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		secure[i] = c
	}

	p := testutil.Pairs(authzBenchRounds,
		func() float64 { return appendThroughputFor(b, plain, authzBenchClients, domain, authzBenchWindow) },
		func() float64 { return appendThroughputFor(b, secure, authzBenchClients, domain, authzBenchWindow) })
	fmt.Printf("\nAppend through gRPC, %d clients, 4 connections, redis, %d pairs of %v windows after a warm-up pair (ABBA order):\n",
		authzBenchClients, authzBenchRounds, authzBenchWindow)
	p.Print(os.Stdout, "plaintext appends/s", "mTLS + authorization appends/s", "target >= 0.85")
	b.ReportMetric(p.Median(), "secure/plain")
	b.ReportMetric(p.CPURatio(), "secure/plain-per-cpu")
}

// BenchmarkAuthorization measures authzBenchRounds pairs of
// authzBenchWindow windows: many short windows rather than a few long
// ones, so that a stall of this shared machine spoils one pair, not the
// figure.
const (
	authzBenchRounds = 12
	authzBenchWindow = time.Second
)
