package redis

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Append implements store.Appender: one append of an appendScript call,
// which it may share with other appends to the same slot (pipeline.go).
func (s *Store) Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error) {
	if err := req.Validate(s.limits); err != nil {
		return nil, err
	}
	a, err := s.appendCall(req)
	if err != nil {
		return nil, err
	}
	if err := s.registerDomain(ctx, req.Aggregate.Domain); err != nil {
		return nil, err
	}
	v, err := s.pipe.append(ctx, a)
	if err != nil {
		return nil, wrap("append", err)
	}
	return s.appendResult(req, v)
}

// appendCall encodes a validated request as its share of an appendScript
// call.
func (s *Store) appendCall(req *store.AppendRequest) (*appendCall, error) {
	agg := req.Aggregate
	k := s.keys(agg)
	args := make([]any, 11, 11+len(req.Pages))
	args[0] = req.Expected
	args[1] = "0"
	if req.Checked() {
		args[1] = "1"
	}
	args[2] = req.IdempotencyKey
	args[3], args[4] = "", "0"
	if req.Snapshot != nil {
		b, err := proto.Marshal(req.Snapshot)
		if err != nil {
			return nil, store.Invalid("snapshot_state", "%v", err)
		}
		args[3], args[4] = b, "1"
	}
	args[5] = agg.Root[:]
	args[6] = req.CorrelationID
	args[7], args[8] = req.Trace.Traceparent, req.Trace.Tracestate
	args[9] = len(req.Pages)
	args[10] = s.limits.HistoryBound()
	for i, p := range req.Pages {
		b, err := encodePage(req.CorrelationID, p.GetEvent())
		if err != nil {
			return nil, store.Invalid(fmt.Sprintf("pages[%d].event", i), "%v", err)
		}
		args = append(args, b)
	}
	return &appendCall{
		log: k.log, roots: k.roots,
		keys: [5]string{k.events, k.snap, k.idem, k.corrs + req.CorrelationID, k.size},
		args: args, pages: len(req.Pages),
	}, nil
}

// appendResult reads an append's reply from appendScript.
func (s *Store) appendResult(req *store.AppendRequest, v any) (*store.AppendResult, error) {
	agg := req.Aggregate
	reply, _ := v.([]any)
	bad := func() error { return fmt.Errorf("redis append: unexpected reply %v", reply) }
	if len(reply) < 2 {
		return nil, bad()
	}
	switch code, _ := reply[0].(int64); code {
	case 4:
		if len(reply) != 3 {
			return nil, bad()
		}
		cur, _ := reply[1].(int64)
		add, _ := reply[2].(int64)
		return nil, &store.HistoryError{Aggregate: agg, Bytes: int(cur), Adding: int(add), Limit: s.limits.HistoryBound()}
	case 3:
		msg, _ := reply[1].(string)
		return nil, fmt.Errorf("redis append to %s: %s", agg, msg)
	case 2:
		next, _ := reply[1].(int64)
		return nil, &store.ConflictError{Aggregate: agg, Expected: req.Expected, Next: uint32(next)}
	case 0, 1:
		if len(reply) != 5 {
			return nil, bad()
		}
		first, _ := reply[1].(int64)
		next, _ := reply[2].(int64)
		offStr, _ := reply[3].(string)
		off, err := strconv.ParseUint(offStr, 10, 64)
		if err != nil {
			return nil, bad()
		}
		res := &store.AppendResult{
			First: uint32(first), Next: uint32(next), Duplicate: code == 1,
			Position: &pb.LogPosition{Partition: s.partition(agg), Offset: off},
		}
		if code == 1 {
			raws, _ := reply[4].([]any)
			strs := make([]string, len(raws))
			for i, r := range raws {
				strs[i], _ = r.(string)
			}
			if res.Pages, err = decodePages(res.First, strs); err != nil {
				return nil, wrap("decode prior pages", err)
			}
			return res, nil
		}
		tsStr, _ := reply[4].(string)
		us, err := parseTS(tsStr)
		if err != nil {
			return nil, bad()
		}
		at := timestamppb.New(store.Micros(us))
		res.Pages = make([]*pb.EventPage, len(req.Pages))
		for i, p := range req.Pages {
			res.Pages[i] = &pb.EventPage{Sequence: &pb.EventPage_Num{Num: res.First + uint32(i)}, CreatedAt: at, Event: p.GetEvent()}
		}
		return res, nil
	default:
		return nil, bad()
	}
}
