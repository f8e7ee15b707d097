package server

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// The fuzz targets feed wire bytes (seeds in testdata/fuzz) through the
// request validation of every RPC: it must never panic, must refuse with an
// *store.InvalidError (INVALID_ARGUMENT naming a field) and must accept only
// requests that satisfy the store's preconditions.

// checkRefusal fails unless err is an invalid-argument refusal naming a field.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var ie *store.InvalidError
	if !errors.As(err, &ie) || ie.Field == "" {
		t.Fatalf("refusal %v is not an *InvalidError with a field", err)
	}
	if st := toStatus(err); status.Code(st) != codes.InvalidArgument {
		t.Fatalf("refusal maps to %v", status.Code(st))
	}
}

var fuzzLimits = store.Limits{MaxPages: 8, MaxEventBytes: 256}

func FuzzAppendRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req pb.AppendRequest
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		r, err := appendRequest(&req, store.TraceContext{}, fuzzLimits)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if store.ValidateDomain("d", r.Aggregate.Domain) != nil || len(req.GetCover().GetRoot().GetValue()) != 16 {
			t.Fatalf("accepted cover %v", req.GetCover())
		}
		if len(r.Pages) > fuzzLimits.MaxPages || len(r.Pages) == 0 && r.Snapshot == nil {
			t.Fatalf("accepted %d pages", len(r.Pages))
		}
		for i, p := range r.Pages {
			if n, ok := p.GetSequence().(*pb.EventPage_Num); ok && n.Num != r.Expected+uint32(i) {
				t.Fatalf("accepted page %d with num %d at expected %d", i, n.Num, r.Expected)
			}
			if p.GetEvent() == nil || proto.Size(p.GetEvent()) > fuzzLimits.MaxEventBytes {
				t.Fatalf("accepted page %d event %v", i, p.GetEvent())
			}
		}
	})
}

func FuzzLoadRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req pb.LoadRequest
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		agg, err := loadRequest(&req)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if store.ValidateDomain("d", agg.Domain) != nil || len(req.GetIdempotencyKey()) > store.MaxIdempotencyKeyLen {
			t.Fatalf("accepted %v", &req)
		}
	})
}

func FuzzQuery(f *testing.F) {
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req pb.Query
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		q, err := parseQuery(&req)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		switch q.kind {
		case byAggregate:
			if store.ValidateDomain("d", q.agg.Domain) != nil {
				t.Fatalf("aggregate query with domain %q", q.agg.Domain)
			}
		case byDomain:
			if store.ValidateDomain("d", q.domain) != nil || q.hasSelection {
				t.Fatalf("domain query %+v", q)
			}
		case byCorrelation:
			if q.cid == "" {
				t.Fatal("correlation query without id")
			}
		}
		if q.sel.Set == nil && q.sel.Lo > q.sel.Hi && req.GetRange().Upper != nil {
			t.Fatalf("accepted range %v", req.GetRange())
		}
		if len(q.sel.Set) > MaxSequenceSet {
			t.Fatalf("accepted %d sequences", len(q.sel.Set))
		}
	})
}

func FuzzReadLogRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req pb.ReadLogRequest
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		limit, err := readLogRequest(&req, 16)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if limit <= 0 || limit > MaxReadLogLimit || req.GetPartition() >= 16 {
			t.Fatalf("accepted %v with limit %d", &req, limit)
		}
	})
}
