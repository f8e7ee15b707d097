//go:build !wasip1

package e2e

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// cascadeOrders is how many orders each mode completes (bounded work).
const cascadeOrders = 40

// BenchmarkCascade completes orders (ConfirmPayment) in the shop mesh with
// SYNC_MODE_NONE (the baseline), SIMPLE (+ the order-summary projector) and
// CASCADE (+ loyalty-earn → customer and fulfillment → shipment: two hops,
// each running the target's own filter and, for the shipment, its
// projector), and prints the latencies and the cost of one CASCADE hop:
// (CASCADE p50 − SIMPLE p50) / 2.
func BenchmarkCascade(b *testing.B) {
	m := startShopMesh(b, wasmhost.WASIEnvoy133)
	orders, customers := m.coordinator(b, "order"), m.coordinator(b, "customer")
	customer := uuid.New()
	if _, err := customers.Handle(ctxT(b), shopCommand(b, "customer", customer, "", 0,
		&examples.CreateCustomer{Name: "Ada", Email: "ada@example.com"})); err != nil {
		b.Fatal(err)
	}
	// confirm runs n orders up to ConfirmPayment and times that command.
	confirm := func(mode pb.SyncMode, n int) []time.Duration {
		var lats []time.Duration
		for i := 0; i < n; i++ {
			order := uuid.New()
			if _, err := orders.Handle(ctxT(b), shopCommand(b, "order", order, "", 0, &examples.CreateOrder{CustomerId: customer.String(),
				Items: []*examples.LineItem{{ProductId: "p1", Name: "Pen", Quantity: 1, UnitPriceCents: 500}}})); err != nil {
				b.Fatal(err)
			}
			if _, err := orders.Handle(ctxT(b), shopCommand(b, "order", order, "", 1, &examples.SubmitPayment{PaymentMethod: "card", AmountCents: 500})); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			resp, err := orders.HandleSync(ctxT(b), &pb.SyncCommandBook{SyncMode: mode,
				Command: shopCommand(b, "order", order, "", 2, &examples.ConfirmPayment{PaymentReference: "r"})})
			lats = append(lats, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if mode == pb.SyncMode_SYNC_MODE_CASCADE && len(resp.GetCascade()) != 2 {
				b.Fatalf("cascade %v", resp.GetCascade())
			}
		}
		sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
		return lats
	}
	pct := func(l []time.Duration, p float64) time.Duration {
		return l[int(float64(len(l)-1)*p)].Round(time.Microsecond)
	}
	for i := 0; i < b.N; i++ {
		for _, mode := range []pb.SyncMode{pb.SyncMode_SYNC_MODE_NONE, pb.SyncMode_SYNC_MODE_SIMPLE, pb.SyncMode_SYNC_MODE_CASCADE} {
			confirm(mode, 5) // warm up connections and VMs
		}
		res := map[pb.SyncMode][]time.Duration{}
		fmt.Printf("\nConfirmPayment in the shop mesh (one wasmhost per domain, Redis), %d orders per mode, sequential\n", cascadeOrders)
		fmt.Printf("%-18s %10s %10s   %s\n", "mode", "p50", "p99", "ratio p50 / NONE")
		for _, mode := range []pb.SyncMode{pb.SyncMode_SYNC_MODE_NONE, pb.SyncMode_SYNC_MODE_SIMPLE, pb.SyncMode_SYNC_MODE_CASCADE} {
			res[mode] = confirm(mode, cascadeOrders)
			fmt.Printf("%-18s %10v %10v   %.2f\n", mode, pct(res[mode], .5), pct(res[mode], .99),
				float64(pct(res[mode], .5))/float64(pct(res[pb.SyncMode_SYNC_MODE_NONE], .5)))
		}
		hop := (pct(res[pb.SyncMode_SYNC_MODE_CASCADE], .5) - pct(res[pb.SyncMode_SYNC_MODE_SIMPLE], .5)) / 2
		fmt.Printf("CASCADE latency per hop (p50, 2 hops): %v\n", hop)
		b.ReportMetric(float64(hop.Microseconds()), "µs/hop")
	}
}
