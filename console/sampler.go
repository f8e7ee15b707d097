package console

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// maxLagCount caps the events counted behind a subscriber: beyond it the
// lag is shown as "at least".
const maxLagCount = 10000

// sampler samples every subscriber's progress (FanoutAdmin) at an interval
// and keeps the last samples for the lag plots and the health.
type sampler struct {
	admin pb.FanoutAdminClient
	query pb.EventQueryClient
	topo  *topology
	keep  int

	mu      sync.Mutex
	samples []sample // oldest first
	rates   func() map[string]float64
}

// sample is the state of every subscriber at one time.
type sample struct {
	At   time.Time            `json:"at"`
	Subs map[string]subSample `json:"subscribers"`
}

// subSample is one subscriber's state.
type subSample struct {
	// Lag is the number of events of its sources it has not handled yet
	// (at most maxLagCount; LagCapped says it is more).
	Lag       uint64 `json:"lag"`
	LagCapped bool   `json:"lagCapped,omitempty"`
	// LagByDomain splits Lag by source domain.
	LagByDomain map[string]uint64 `json:"lagByDomain,omitempty"`
	// Partitions are its positions per source domain and partition.
	Partitions  []*pb.PartitionProgress `json:"-"`
	DeadLetters int                     `json:"deadLetters"`
	Err         string                  `json:"error,omitempty"`
}

func newSampler(admin pb.FanoutAdminClient, query pb.EventQueryClient, topo *topology, keep int) *sampler {
	return &sampler{admin: admin, query: query, topo: topo, keep: keep}
}

func (s *sampler) run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if cfg := s.topo.current(); cfg != nil {
			s.add(s.take(ctx, cfg))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.topo.next():
		}
	}
}

func (s *sampler) add(smp sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, smp)
	if len(s.samples) > s.keep {
		s.samples = s.samples[len(s.samples)-s.keep:]
	}
}

// take samples every subscriber of cfg now.
func (s *sampler) take(ctx context.Context, cfg *pb.FanoutConfig) sample {
	out := sample{At: time.Now().UTC(), Subs: map[string]subSample{}}
	dls := map[string]int{}
	if resp, err := s.admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{}); err == nil {
		for _, d := range resp.GetDeadLetters() {
			dls[d.GetSubscriber()]++
		}
	}
	for _, sub := range cfg.GetSubscriptions() {
		out.Subs[sub.GetName()] = s.subscriber(ctx, sub.GetName(), dls[sub.GetName()])
	}
	return out
}

// subscriber samples one subscriber.
func (s *sampler) subscriber(ctx context.Context, name string, deadLetters int) subSample {
	ss := subSample{DeadLetters: deadLetters}
	p, err := s.admin.GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: name})
	if err != nil {
		ss.Err = err.Error()
		return ss
	}
	ss.Partitions = p.GetPartitions()
	ss.LagByDomain = map[string]uint64{}
	byDomain := map[string][]*pb.PartitionProgress{}
	for _, pp := range p.GetPartitions() {
		byDomain[pp.GetDomain()] = append(byDomain[pp.GetDomain()], pp)
	}
	for domain, parts := range byDomain {
		n, capped, err := countBehind(ctx, s.query, domain, parts, maxLagCount-ss.Lag)
		if err != nil {
			ss.Err = err.Error()
		}
		ss.Lag += n
		ss.LagByDomain[domain] = n
		ss.LagCapped = ss.LagCapped || capped
	}
	return ss
}

// countBehind counts the events of domain's log after the committed
// positions and up to the ends of parts, reading at most max of them.
func countBehind(ctx context.Context, query pb.EventQueryClient, domain string, parts []*pb.PartitionProgress, max uint64) (uint64, bool, error) {
	q := &pb.Query{Cover: &pb.Cover{Domain: domain}}
	ends := map[uint32]uint64{}
	behind := false
	for _, p := range parts {
		ends[p.GetPartition()] = p.GetEnd()
		q.After = append(q.After, &pb.LogPosition{Partition: p.GetPartition(), Offset: p.GetCommitted()})
		behind = behind || p.GetCommitted() < p.GetEnd()
	}
	if !behind {
		return 0, false, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := query.GetEvents(ctx, q)
	if err != nil {
		return 0, false, err
	}
	var n uint64
	for {
		b, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return n, false, nil
		}
		if err != nil {
			return n, false, err
		}
		pos := b.GetPosition()
		if end, ok := ends[pos.GetPartition()]; ok && pos.GetOffset() > end {
			continue // appended after the sample's ends
		}
		n += uint64(len(b.GetPages()))
		if n >= max {
			return max, true, nil
		}
	}
}

// stats is the latest state for the topology.
type stats struct {
	subscribers map[string]subStat
	domains     map[string]float64 // events per second
}

type subStat struct {
	lag         uint64
	deadLetters int
}

func (s *sampler) stats() stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := stats{subscribers: map[string]subStat{}, domains: map[string]float64{}}
	if s.rates != nil {
		out.domains = s.rates()
	}
	if len(s.samples) == 0 {
		return out
	}
	last := s.samples[len(s.samples)-1]
	for name, ss := range last.Subs {
		if ss.Err != "" {
			continue
		}
		out.subscribers[name] = subStat{lag: ss.Lag, deadLetters: ss.DeadLetters}
	}
	return out
}

// history is a copy of the samples, oldest first.
func (s *sampler) history() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}
