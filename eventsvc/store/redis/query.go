package redis

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Range implements store.Reader with one LRANGE.
func (s *Store) Range(ctx context.Context, agg store.Aggregate, lo, hi uint32) ([]*pb.EventBook, error) {
	if err := store.ValidateDomain("cover.domain", agg.Domain); err != nil {
		return nil, err
	}
	stop := int64(hi)
	if hi == math.MaxUint32 {
		stop = -1
	}
	raws, err := s.c.LRange(ctx, s.keys(agg).events, int64(lo), stop).Result()
	if err != nil {
		return nil, wrap("read events", err)
	}
	var books []*pb.EventBook
	for i, raw := range raws {
		p, cid, err := decodePage(lo+uint32(i), raw)
		if err != nil {
			return nil, wrap("decode events", err)
		}
		books = store.AppendPage(books, agg, cid, p)
	}
	return books, nil
}

// domainList returns the known domains, sorted.
func (s *Store) domainList(ctx context.Context) ([]string, error) {
	ds, err := s.c.SMembers(ctx, "az:domains").Result()
	if err != nil {
		return nil, wrap("read domains", err)
	}
	slices.Sort(ds)
	return ds, nil
}

// corrRef is one append in a correlation index.
type corrRef struct {
	agg      store.Aggregate
	p        uint32
	ts       int64
	idx      int
	first, n uint32
	pagesCmd *goredis.StringSliceCmd
}

// ByCorrelation implements store.Reader: it reads the correlation index of
// every partition of every domain (pipelined) and merges them by the
// appends' server time; within a partition the index order is kept.
func (s *Store) ByCorrelation(ctx context.Context, correlationID string) ([]*pb.EventBook, error) {
	if correlationID == "" {
		return nil, store.Invalid("cover.correlation_id", "required")
	}
	domains, err := s.domainList(ctx)
	if err != nil {
		return nil, err
	}
	type part struct {
		domain string
		p      uint32
		cmd    *goredis.StringSliceCmd
	}
	var parts []part
	pipe := s.c.Pipeline()
	for _, d := range domains {
		for p := uint32(0); p < s.partitions; p++ {
			parts = append(parts, part{d, p, pipe.LRange(ctx, "az:corr:"+tag(d, p)+":"+correlationID, 0, -1)})
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrap("read correlation index", err)
	}
	var refs []*corrRef
	for _, pt := range parts {
		for i, e := range pt.cmd.Val() {
			if len(e) < 16 {
				return nil, fmt.Errorf("redis: corrupt correlation entry %q", e)
			}
			f := strings.Fields(e[16:])
			if len(f) != 3 {
				return nil, fmt.Errorf("redis: corrupt correlation entry %q", e)
			}
			ts, err1 := strconv.ParseInt(f[0], 10, 64)
			first, err2 := strconv.ParseUint(f[1], 10, 32)
			n, err3 := strconv.ParseUint(f[2], 10, 32)
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("redis: corrupt correlation entry %q", e)
			}
			refs = append(refs, &corrRef{
				agg: store.Aggregate{Domain: pt.domain, Root: uuid.UUID([]byte(e[:16]))},
				p:   pt.p, ts: ts, idx: i, first: uint32(first), n: uint32(n),
			})
		}
	}
	slices.SortStableFunc(refs, func(a, b *corrRef) int {
		if a.ts != b.ts {
			return cmpInt(a.ts, b.ts)
		}
		if c := strings.Compare(a.agg.Domain, b.agg.Domain); c != 0 {
			return c
		}
		if a.p != b.p {
			return cmpInt(a.p, b.p)
		}
		return cmpInt(a.idx, b.idx)
	})
	pipe = s.c.Pipeline()
	for _, r := range refs {
		r.pagesCmd = pipe.LRange(ctx, eventsKey(r.agg.Domain, r.p, r.agg.Root[:]), int64(r.first), int64(r.first+r.n-1))
	}
	if len(refs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, wrap("read correlated events", err)
		}
	}
	var books []*pb.EventBook
	var last store.Aggregate
	for _, r := range refs {
		pages, err := decodePages(r.first, r.pagesCmd.Val())
		if err != nil {
			return nil, wrap("decode events", err)
		}
		if len(books) == 0 || r.agg != last {
			books = append(books, &pb.EventBook{Cover: r.agg.Cover(correlationID)})
			last = r.agg
		}
		b := books[len(books)-1]
		b.Pages = append(b.Pages, pages...)
	}
	return books, nil
}

func cmpInt[T int | int64 | uint32](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Roots implements store.Reader: domain by domain (the next one only
// while the page is not full), each read with domainRoots.
func (s *Store) Roots(ctx context.Context, domain string, after store.Aggregate, limit int) ([]store.Aggregate, error) {
	limit = max(1, min(limit, store.RootsLimit))
	domains := []string{domain}
	if domain == "" {
		var err error
		if domains, err = s.domainList(ctx); err != nil {
			return nil, err
		}
	}
	var out []store.Aggregate
	for _, d := range domains {
		if d < after.Domain {
			continue
		}
		var from []byte // exclusive; nil: from the first
		if d == after.Domain {
			from = after.Root[:]
		}
		aggs, err := s.domainRoots(ctx, d, from, limit-len(out))
		if err != nil {
			return nil, err
		}
		if out = append(out, aggs...); len(out) == limit {
			break
		}
	}
	return out, nil
}

// domainRoots returns the first n roots of a domain after from, in byte
// order, merging the partitions' sorted sets. Each round reads about 2n/P
// roots of every partition after the last root returned (ZRANGE BYLEX
// LIMIT, pipelined) and keeps those up to the lowest last root of a
// partition that may hold more: all of them belong to the answer, in
// order. The partition with that lowest last root gives all it read, so
// every round makes progress; one or two rounds usually fill the page.
func (s *Store) domainRoots(ctx context.Context, domain string, from []byte, n int) ([]store.Aggregate, error) {
	var out []store.Aggregate
	for len(out) < n {
		need := n - len(out)
		k := min(need, (2*need+int(s.partitions)-1)/int(s.partitions)+4)
		bound := "-"
		if from != nil {
			bound = "(" + string(from)
		}
		cmds := make([]*goredis.StringSliceCmd, s.partitions)
		pipe := s.c.Pipeline()
		for p := range s.partitions {
			cmds[p] = pipe.ZRangeByLex(ctx, rootsKey(domain, p), &goredis.ZRangeBy{Min: bound, Max: "+", Count: int64(k)})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, wrap("read roots", err)
		}
		var got []string
		var safe string // the lowest last root of a partition with more
		more := false
		for _, c := range cmds {
			rs := c.Val()
			for _, r := range rs {
				if len(r) != 16 {
					return nil, fmt.Errorf("redis: corrupt root %q", r)
				}
			}
			got = append(got, rs...)
			if len(rs) == k && (!more || rs[k-1] < safe) {
				safe, more = rs[k-1], true
			}
		}
		slices.Sort(got)
		for _, r := range got {
			if more && r > safe || len(out) == n {
				break
			}
			out = append(out, store.Aggregate{Domain: domain, Root: uuid.UUID([]byte(r))})
		}
		if !more {
			break // every partition was read to its end
		}
		last := out[len(out)-1].Root
		from = last[:]
	}
	return out, nil
}
