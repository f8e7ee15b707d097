package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Load implements store.Loader: LoadEncoded, its pages decoded.
func (s *Store) Load(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	l, err := s.LoadEncoded(ctx, agg, q)
	if err != nil {
		return nil, err
	}
	if l.Pages, err = l.AllPages(); err != nil {
		return nil, wrap("decode pages", err)
	}
	l.Encoded, l.EncodedCount = nil, 0
	return l, nil
}

// LoadEncoded implements store.EncodedLoader with one read-only Lua script
// (and an LRANGE for long pages, see loadScript).
func (s *Store) LoadEncoded(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	if err := store.ValidateDomain("cover.domain", agg.Domain); err != nil {
		return nil, err
	}
	if q.From > 0 && q.From >= q.To {
		return &store.Loaded{Next: q.To}, nil
	}
	k := s.keys(agg)
	key := q.IdempotencyKey
	if q.From > 0 {
		key = ""
	}
	v, err := s.pipe.run(ctx, loadScript, []string{k.events, k.snap, k.idem, k.size}, key, inlinePages, max(q.MaxBytes, 0), q.From, q.To)
	if err != nil {
		return nil, wrap("load", err)
	}
	reply, _ := v.([]any)
	if len(reply) != 7 {
		return nil, fmt.Errorf("redis load: unexpected reply %v", reply)
	}
	next, _ := reply[0].(int64)
	snap, _ := reply[1].(string)
	from, _ := reply[2].(int64)
	count, _ := reply[4].(int64)
	out := &store.Loaded{Next: uint32(next)}
	if snap != "" {
		seq, state, ok := strings.Cut(snap, " ")
		n, err := strconv.ParseUint(seq, 10, 32)
		st := &anypb.Any{}
		if !ok || err != nil || proto.Unmarshal([]byte(state), st) != nil {
			return nil, fmt.Errorf("redis load: corrupt snapshot of %s", agg)
		}
		out.Snapshot = &pb.Snapshot{Sequence: uint32(n), State: st}
	}
	var raws []string
	if inline, ok := reply[3].([]any); ok {
		raws = make([]string, len(inline))
		for i, r := range inline {
			raws[i], _ = r.(string)
		}
	} else if raws, err = s.c.LRange(ctx, k.events, from, from+count-1).Result(); err != nil {
		return nil, wrap("load pages", err)
	}
	if len(raws) != int(count) || (count > 0 && from+count > next) {
		return nil, fmt.Errorf("redis load: %d pages from %d, %d expected, next sequence %d", len(raws), from, count, next)
	}
	if count > 0 && from+count < next {
		out.More = uint32(from + count)
	}
	if q.From > 0 {
		out.Next = q.To
	}
	if out.Encoded, err = encodePages(uint32(from), raws); err != nil {
		return nil, wrap("encode pages", err)
	}
	out.EncodedCount = len(raws)
	if prior, _ := reply[5].(string); prior != "" {
		f := strings.Fields(prior)
		if len(f) != 4 {
			return nil, fmt.Errorf("redis load: corrupt idempotency record %q", prior)
		}
		first, _ := strconv.ParseUint(f[0], 10, 32)
		nx, _ := strconv.ParseUint(f[2], 10, 32)
		off, _ := strconv.ParseUint(f[3], 10, 64)
		out.Prior = &store.AppendResult{First: uint32(first), Next: uint32(nx), Duplicate: true, Position: &pb.LogPosition{Partition: k.p, Offset: off}}
		if out.Prior.Pages, err = decodePages(uint32(first), strings1(reply[6])); err != nil {
			return nil, wrap("decode prior pages", err)
		}
	}
	return out, nil
}

// inlinePages is the most pages the load script returns itself; longer
// histories are read with LRANGE (see loadScript).
const inlinePages = 64

// strings1 converts a script's array reply of strings.
func strings1(v any) []string {
	raws, _ := v.([]any)
	out := make([]string, len(raws))
	for i, r := range raws {
		out[i], _ = r.(string)
	}
	return out
}
