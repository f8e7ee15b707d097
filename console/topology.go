package console

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// topology keeps the latest fan-out configuration from the control plane.
type topology struct {
	src TopologySource
	log *slog.Logger

	mu      sync.Mutex
	cfg     *pb.FanoutConfig
	changed chan struct{} // closed and replaced on every new configuration
}

func (t *topology) run(ctx context.Context) error {
	if t.src == nil {
		<-ctx.Done()
		return nil
	}
	err := t.src.Run(ctx, func(cfg *pb.FanoutConfig) error {
		t.mu.Lock()
		t.cfg = proto.CloneOf(cfg)
		if t.changed != nil {
			close(t.changed)
			t.changed = nil
		}
		t.mu.Unlock()
		t.log.Info("console: topology", "version", cfg.GetVersion(), "subscribers", len(cfg.GetSubscriptions()), "domains", len(cfg.GetDomains()))
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// current is the latest configuration, nil before the first.
func (t *topology) current() *pb.FanoutConfig {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg
}

// next is closed when the configuration changes after this call.
func (t *topology) next() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return t.changed
}

// topologyDomains are the configuration's domains, sorted: those with a
// coordinator and every subscriber's sources and targets.
func topologyDomains(cfg *pb.FanoutConfig) []string {
	var out []string
	for _, d := range cfg.GetDomains() {
		out = append(out, d.GetDomain())
	}
	for _, s := range cfg.GetSubscriptions() {
		out = append(out, s.GetSourceDomains()...)
		out = append(out, s.GetTargetDomains()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// kindName is a subscriber kind in lower case ("saga", "projector",
// "process_manager", ...).
func kindName(k pb.SubscriberKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "SUBSCRIBER_KIND_"))
}

// topologyJSON is the picture of the mesh.
type topologyJSON struct {
	Version     string           `json:"version"`
	Known       bool             `json:"known"`
	Domains     []domainNode     `json:"domains"`
	Subscribers []subscriberNode `json:"subscribers"`
	Edges       []edge           `json:"edges"`
}

type domainNode struct {
	Name string `json:"name"`
	// Rate is events appended per second over the sampled minutes (-1:
	// unknown, no subscriber reads the domain).
	Rate   float64 `json:"rate"`
	Health string  `json:"health"`
}

type subscriberNode struct {
	Name        string   `json:"name"`
	Kind        string   `json:"kind"`
	Sources     []string `json:"sources"`
	Targets     []string `json:"targets,omitempty"`
	Synchronous bool     `json:"synchronous,omitempty"`
	// Lag is how many events of its sources it has not handled yet.
	Lag         uint64 `json:"lag"`
	DeadLetters int    `json:"deadLetters"`
	// Health: "ok", "lagging" (behind its sources), "failing" (dead
	// letters parked) or "unknown" (not sampled yet).
	Health string `json:"health"`
}

type edge struct {
	From string `json:"from"` // "domain:order", "saga:loyalty-earn"
	To   string `json:"to"`
}

func (c *Console) getTopology(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, c.topologyView())
}

func (c *Console) topologyView() topologyJSON {
	cfg := c.topo.current()
	out := topologyJSON{Version: cfg.GetVersion(), Known: cfg != nil, Domains: []domainNode{}, Subscribers: []subscriberNode{}, Edges: []edge{}}
	stats := c.samples.stats()
	domainHealth := map[string]string{}
	for _, s := range cfg.GetSubscriptions() {
		kind := kindName(s.GetKind())
		st, sampled := stats.subscribers[s.GetName()]
		n := subscriberNode{Name: s.GetName(), Kind: kind, Sources: s.GetSourceDomains(), Targets: s.GetTargetDomains(),
			Synchronous: s.GetSynchronous(), Lag: st.lag, DeadLetters: st.deadLetters, Health: "unknown"}
		if sampled {
			n.Health = "ok"
			switch {
			case st.deadLetters > 0:
				n.Health = "failing"
			case st.lag > 0:
				n.Health = "lagging"
			}
		}
		out.Subscribers = append(out.Subscribers, n)
		id := kind + ":" + s.GetName()
		for _, d := range s.GetSourceDomains() {
			out.Edges = append(out.Edges, edge{From: "domain:" + d, To: id})
			if n.Health == "failing" || n.Health == "lagging" && domainHealth[d] != "failing" {
				domainHealth[d] = n.Health
			}
		}
		for _, d := range s.GetTargetDomains() {
			out.Edges = append(out.Edges, edge{From: id, To: "domain:" + d})
		}
	}
	for _, d := range topologyDomains(cfg) {
		rate, ok := stats.domains[d]
		n := domainNode{Name: d, Rate: -1, Health: "ok"}
		if ok {
			n.Rate = rate
		}
		if h := domainHealth[d]; h != "" {
			n.Health = "subscriber " + h
		}
		out.Domains = append(out.Domains, n)
	}
	return out
}

// kindLower is an enum value's name without its prefix, in lower case.
func kindLower(s, prefix string) string { return strings.ToLower(strings.TrimPrefix(s, prefix)) }
