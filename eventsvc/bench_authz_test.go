package eventsvc_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

// authzBenchClients is the client count the issue's target is set at.
const authzBenchClients = 16

// BenchmarkAuthorization measures Append throughput at 16 clients through
// an event service with mTLS and authorization against a plaintext one,
// both on the same redis-server in the same run, and prints the ratio
// (target >= 0.85): the median of 5 pairs of windows.
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

	// Pairs of windows, the order alternating; the median of the pairs'
	// ratios is the figure (this machine is shared: one window can stall).
	var ps, ss, ratios []float64
	for i := range authzBenchRounds {
		var p, s float64
		if i%2 == 0 {
			p = appendThroughputIn(b, plain, authzBenchClients, domain)
			s = appendThroughputIn(b, secure, authzBenchClients, domain)
		} else {
			s = appendThroughputIn(b, secure, authzBenchClients, domain)
			p = appendThroughputIn(b, plain, authzBenchClients, domain)
		}
		ps, ss, ratios = append(ps, p), append(ss, s), append(ratios, s/p)
	}
	fmt.Printf("\nAppend through gRPC, %d clients, 4 connections, redis, %d pairs of %v windows (order alternating):\n", authzBenchClients, authzBenchRounds, benchWindow)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "pair\tplaintext appends/s\tmTLS + authorization appends/s\tratio\t")
	for i := range ratios {
		fmt.Fprintf(w, "%d\t%.0f\t%.0f\t%.2f\t\n", i+1, ps[i], ss[i], ratios[i])
	}
	fmt.Fprintf(w, "median\t%.0f\t%.0f\t%.2f (target >= 0.85)\t\n", median(ps), median(ss), median(ratios))
	w.Flush()
	b.ReportMetric(median(ratios), "secure/plain")
}

// authzBenchRounds is how many pairs of windows BenchmarkAuthorization
// measures.
const authzBenchRounds = 5

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
