package server

import (
	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// MaxSequenceSet bounds the sequences one query may list.
const MaxSequenceSet = 10000

// MaxReadLogLimit is the most log entries one ReadLog returns.
const MaxReadLogLimit = 1000

// aggregateOf validates a cover naming one aggregate.
func aggregateOf(c *pb.Cover) (store.Aggregate, error) {
	if c == nil {
		return store.Aggregate{}, store.Invalid("cover", "required")
	}
	if err := store.ValidateDomain("cover.domain", c.GetDomain()); err != nil {
		return store.Aggregate{}, err
	}
	root, err := rootOf(c.GetRoot())
	if err != nil {
		return store.Aggregate{}, err
	}
	if err := store.ValidateText("cover.correlation_id", c.GetCorrelationId(), store.MaxCorrelationLen); err != nil {
		return store.Aggregate{}, err
	}
	return store.Aggregate{Domain: c.GetDomain(), Root: root}, nil
}

func rootOf(u *pb.UUID) (uuid.UUID, error) {
	if u == nil {
		return uuid.UUID{}, store.Invalid("cover.root", "required")
	}
	if len(u.GetValue()) != 16 {
		return uuid.UUID{}, store.Invalid("cover.root", "%d bytes, want 16", len(u.GetValue()))
	}
	return uuid.UUID(u.GetValue()), nil
}

// appendRequest converts and validates an AppendRequest made in the trace
// context tc (the call's, which the store keeps with the log entry for the
// fan-out's deliveries).
func appendRequest(req *pb.AppendRequest, tc store.TraceContext, l store.Limits) (*store.AppendRequest, error) {
	agg, err := aggregateOf(req.GetCover())
	if err != nil {
		return nil, err
	}
	r := &store.AppendRequest{
		Aggregate:      agg,
		CorrelationID:  req.GetCover().GetCorrelationId(),
		Expected:       req.GetExpectedSequence(),
		Pages:          req.GetPages(),
		Snapshot:       req.GetSnapshotState(),
		IdempotencyKey: req.GetIdempotencyKey(),
		Trace:          tc,
	}
	if err := r.Validate(l); err != nil {
		return nil, err
	}
	return r, nil
}

// loadRequest converts and validates a LoadRequest.
func loadRequest(req *pb.LoadRequest) (store.Aggregate, error) {
	agg, err := aggregateOf(req.GetCover())
	if err != nil {
		return agg, err
	}
	if d := req.GetDelayMs(); d > MaxLoadDelayMs {
		return agg, store.Invalid("delay_ms", "at most %d, got %d", MaxLoadDelayMs, d)
	}
	if f, t := req.GetFromSequence(), req.GetToSequence(); f > 0 && t <= f {
		return agg, store.Invalid("to_sequence", "a continuation (from_sequence %d) needs to_sequence greater than it, the first page's next_sequence; got %d", f, t)
	}
	return agg, store.ValidateText("idempotency_key", req.GetIdempotencyKey(), store.MaxIdempotencyKeyLen)
}

// MaxLoadDelayMs is the longest wait a LoadRequest may ask for (delay_ms).
const MaxLoadDelayMs = 1000

// queryKind is what a Query addresses.
type queryKind int

const (
	byAggregate   queryKind = iota // cover.domain + cover.root
	byDomain                       // cover.domain alone: the domain's log
	byCorrelation                  // cover.correlation_id (optionally narrowed to an aggregate)
)

// query is a validated Query.
type query struct {
	kind queryKind
	agg  store.Aggregate // byAggregate, and byCorrelation when narrowed
	// narrowed: byCorrelation restricted to agg.
	narrowed bool
	domain   string
	cid      string
	sel      store.Selection
	// hasSelection: the query set a selection.
	hasSelection bool
	// after: byDomain resume positions per partition.
	after map[uint32]uint64
}

// parseQuery converts and validates a Query.
func parseQuery(q *pb.Query) (*query, error) {
	c := q.GetCover()
	if c == nil {
		return nil, store.Invalid("cover", "required")
	}
	out := &query{cid: c.GetCorrelationId(), domain: c.GetDomain(), sel: store.All()}
	if err := store.ValidateText("cover.correlation_id", out.cid, store.MaxCorrelationLen); err != nil {
		return nil, err
	}
	hasRoot := c.GetRoot() != nil
	switch {
	case hasRoot:
		agg, err := aggregateOf(c)
		if err != nil {
			return nil, err
		}
		out.agg, out.kind = agg, byAggregate
		if out.cid != "" {
			out.kind, out.narrowed = byCorrelation, true
		}
	case out.cid != "":
		out.kind = byCorrelation
		if out.domain != "" {
			if err := store.ValidateDomain("cover.domain", out.domain); err != nil {
				return nil, err
			}
		}
	case out.domain != "":
		if err := store.ValidateDomain("cover.domain", out.domain); err != nil {
			return nil, err
		}
		out.kind = byDomain
	default:
		return nil, store.Invalid("cover", "needs domain (+ root) or correlation_id")
	}
	if err := parseSelection(q, out); err != nil {
		return nil, err
	}
	if len(q.GetAfter()) > 0 {
		if out.kind != byDomain {
			return nil, store.Invalid("after", "only for a whole domain (cover.domain without root or correlation_id)")
		}
		out.after = map[uint32]uint64{}
		for i, p := range q.GetAfter() {
			if _, dup := out.after[p.GetPartition()]; dup {
				return nil, store.Invalid("after", "partition %d listed twice (entry %d)", p.GetPartition(), i)
			}
			out.after[p.GetPartition()] = p.GetOffset()
		}
	}
	return out, nil
}

func parseSelection(q *pb.Query, out *query) error {
	switch s := q.GetSelection().(type) {
	case nil:
		return nil
	case *pb.Query_Range:
		out.hasSelection = true
		out.sel.Lo = s.Range.GetLower()
		if s.Range.Upper != nil {
			if s.Range.GetUpper() < s.Range.GetLower() {
				return store.Invalid("range.upper", "%d is below range.lower %d", s.Range.GetUpper(), s.Range.GetLower())
			}
			out.sel.Hi = s.Range.GetUpper()
		}
	case *pb.Query_Sequences:
		out.hasSelection = true
		if len(s.Sequences.GetValues()) > MaxSequenceSet {
			return store.Invalid("sequences.values", "%d sequences exceed the limit of %d", len(s.Sequences.GetValues()), MaxSequenceSet)
		}
		out.sel.Set = append([]uint32{}, s.Sequences.GetValues()...)
	case *pb.Query_Temporal:
		out.hasSelection = true
		switch p := s.Temporal.GetPointInTime().(type) {
		case *pb.TemporalQuery_AsOfSequence:
			out.sel.Hi = p.AsOfSequence
		case *pb.TemporalQuery_AsOfTime:
			if err := p.AsOfTime.CheckValid(); err != nil {
				return store.Invalid("temporal.as_of_time", "%v", err)
			}
			out.sel.AsOf = p.AsOfTime.AsTime()
		default:
			return store.Invalid("temporal", "needs as_of_time or as_of_sequence")
		}
	}
	if out.hasSelection && out.kind == byDomain {
		return store.Invalid("selection", "a selection needs cover.root")
	}
	return nil
}

// readLogRequest validates a ReadLogRequest against the store's partitions.
func readLogRequest(req *pb.ReadLogRequest, partitions uint32) (int, error) {
	if err := store.ValidateDomain("domain", req.GetDomain()); err != nil {
		return 0, err
	}
	if req.GetPartition() >= partitions {
		return 0, store.Invalid("partition", "%d: the log has %d partitions", req.GetPartition(), partitions)
	}
	limit := int(req.GetLimit())
	if limit == 0 || limit > MaxReadLogLimit {
		limit = MaxReadLogLimit
	}
	return limit, nil
}
