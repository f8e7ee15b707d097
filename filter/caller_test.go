package filter

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

const (
	importer   = "spiffe://td/ns/ops/sa/importer"
	dispatcher = "spiffe://td/ns/angzarr-system/sa/angzarr-eventsvc"
	clientA    = "spiffe://td/ns/shop/sa/web"
	clientB    = "spiffe://td/ns/shop/sa/mobile"
)

// identityConfig trusts the proxy's x-forwarded-client-cert.
const identityConfig = `{"domains":["counter"],"max_retries":3,"caller_identity":true,` +
	`"recorders":["` + importer + `"],"saga_issuers":["` + dispatcher + `"],` +
	`"event_types":{"counter":["` + counterEventType + `"]}}`

// as is the header an mTLS proxy sets for a client certificate of id.
func as(id string) [][2]string {
	return [][2]string{{XFCCHeader, "By=spiffe://td/ns/shop/sa/counter;URI=" + id}}
}

func TestCallerIdentity(t *testing.T) {
	record := func(t *testing.T, hs *harness, who [][2]string) result {
		book := &pb.EventBook{Cover: &pb.Cover{Domain: "counter", Root: root(2)}, Pages: []*pb.EventPage{counter.Event(5000000)}}
		return hs.sendWith(PathRecord, frame(t, book), who)
	}
	handleAs := func(hs *harness, who string, c *pb.CommandBook) result {
		return hs.sendWith(PathHandle, frame(hs.t, c), as(who))
	}

	t.Run("Record without an identity is UNAUTHENTICATED", func(t *testing.T) {
		hs := newHarness(t, identityConfig)
		r := record(t, hs, nil)
		wantCode(t, r, Unauthenticated, "needs a caller identity")
		if len(hs.stored(2)) != 0 || r.upstream {
			t.Fatalf("stored %d, upstream %v", len(hs.stored(2)), r.upstream)
		}
	})
	t.Run("Record by a client that is not a recorder is PERMISSION_DENIED", func(t *testing.T) {
		hs := newHarness(t, identityConfig)
		wantCode(t, record(t, hs, as(clientA)), PermissionDenied, clientA+" may not Record (rule: recorders)")
		if len(hs.stored(2)) != 0 {
			t.Fatalf("stored %d", len(hs.stored(2)))
		}
	})
	t.Run("Record by a recorder stores", func(t *testing.T) {
		hs := newHarness(t, identityConfig)
		wantCode(t, record(t, hs, as(importer)), OK, "")
		if len(hs.stored(2)) != 1 {
			t.Fatalf("stored %d", len(hs.stored(2)))
		}
	})
	t.Run("another client's idempotency key is not theirs", func(t *testing.T) {
		hs := newHarness(t, identityConfig)
		a := cmd(1, 0, 4)
		a.IdempotencyKey = "k-1"
		ra := handleAs(hs, clientA, a)
		wantCode(t, ra, OK, "")
		b := cmd(1, 1, 7)
		b.IdempotencyKey = "k-1"
		rb := handleAs(hs, clientB, b)
		wantCode(t, rb, OK, "")
		if got := sumPages(t, hs.stored(1)); len(hs.stored(1)) != 2 || got != 11 {
			t.Fatalf("stored %d events summing %d, want B's command applied too (2, 11)", len(hs.stored(1)), got)
		}
		if proto.Equal(ra.resp, rb.resp) {
			t.Fatal("B got A's answer")
		}
		// A's own repeat is still a duplicate.
		again := cmd(1, 0, 4)
		again.IdempotencyKey = "k-1"
		wantCode(t, handleAs(hs, clientA, again), OK, "")
		if len(hs.stored(1)) != 2 {
			t.Fatalf("A's repeat stored again: %d", len(hs.stored(1)))
		}
	})
	t.Run("a saga's key cannot be claimed by another client", func(t *testing.T) {
		hs := newHarness(t, identityConfig)
		key := sagakey.Key("loyalty-earn", "order", root(9).GetValue(), 3, 0)
		squat := cmd(1, 0, 1)
		squat.IdempotencyKey = key
		wantCode(t, handleAs(hs, clientA, squat), OK, "")
		credit := cmd(1, 0, 50)
		credit.AutoResequence = true
		credit.IdempotencyKey = key
		wantCode(t, handleAs(hs, dispatcher, credit), OK, "")
		if got := sumPages(t, hs.stored(1)); got != 51 {
			t.Fatalf("the saga's credit was a no-op: sum %d, want 51", got)
		}
		// The dispatcher's redelivery of the same saga command is a duplicate.
		wantCode(t, handleAs(hs, dispatcher, credit), OK, "")
		if got := sumPages(t, hs.stored(1)); got != 51 {
			t.Fatalf("redelivery applied twice: sum %d", got)
		}
	})
}

func sumPages(t *testing.T, pages []*pb.EventPage) int64 {
	t.Helper()
	v, err := counter.State(&pb.EventBook{Pages: pages})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
