//go:build !wasip1

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"github.com/angzarr-mesh/angzarr/wasmhost/wasmhosttest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestRefusedDomainsMakeNoMetricNames is the attack of issue 16 through
// the built module in wasmhost: commands for domains the proxy does not
// serve, each with its own long domain name, must not each become a
// metric. /stats/prometheus keeps the same metric families, and about the
// same size, after 2,000 of them (the filter once grew it by 26 KB per
// refused command).
func TestRefusedDomainsMakeNoMetricNames(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- counter.Serve(ctx, lis, &counter.Service{}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	logic := lis.Addr().String()
	p := wasmhosttest.Start(t, wasmhost.Config{
		FilterPath: wasmPath,
		Plugin:     wasmhost.Plugin{Configuration: []byte(`{"domains":["counter"]}`)},
		Upstream:   logic,
		// Refused commands call nothing; the clusters only have to exist.
		Clusters: map[string]string{"angzarr-eventsvc": logic, "angzarr-logic": logic},
		VMs:      1,
	})
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := pb.NewBusinessCoordinatorClient(conn)

	refuse := func(i int) {
		t.Helper()
		domain := fmt.Sprintf("%04d-%s", i, strings.Repeat("x", 1024))
		cmd := &pb.CommandBook{
			Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: make([]byte, 16)}},
			Pages: []*pb.CommandPage{counter.Command(1, 0)},
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_, err := client.Handle(cctx, cmd)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "not served") {
			t.Fatalf("command %d for an unserved domain: %v, want InvalidArgument (not served)", i, err)
		}
	}
	// The first refusal defines the metrics a refusal records.
	refuse(0)
	beforeSize, before := scrape(t, p.AdminAddr)
	for i := 1; i <= 2000; i++ {
		refuse(i)
	}
	afterSize, after := scrape(t, p.AdminAddr)
	if added := slices.DeleteFunc(slices.Sorted(maps.Keys(after)), func(n string) bool { _, ok := before[n]; return ok }); len(added) > 0 {
		t.Errorf("refused commands added %d metric families, e.g. %.80s…", len(added), added[0])
	}
	// The counts grow by a few digits; a name per command would add more
	// than a kilobyte each.
	if afterSize > beforeSize+1024 {
		t.Errorf("/stats/prometheus grew from %d to %d bytes", beforeSize, afterSize)
	}
	var refused float64
	for name, mf := range after {
		if strings.HasSuffix(name, "_invalid") && strings.Contains(name, "angzarr_commands") {
			for _, m := range mf.GetMetric() {
				refused += m.GetCounter().GetValue()
			}
		}
	}
	if refused != 2001 {
		t.Errorf("refused commands counted %v times, want 2001", refused)
	}
}

// scrape returns the size and the metric families of /stats/prometheus.
func scrape(t *testing.T, admin string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /stats/prometheus: %v", err)
	}
	return len(body), families
}
