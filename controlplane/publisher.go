package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Publisher owns the xDS caches: a snapshot cache keyed by node id for the
// Envoy resource types, and a LinearCache for the fan-out subscriptions,
// behind one MuxCache. Apply translates and verifies a topology and, only
// if it is good, pushes it to every connected node; a bad one is rejected
// and the last good configuration keeps serving.
type Publisher struct {
	log     *slog.Logger
	opts    Options
	metrics *metrics
	tracer  trace.Tracer

	snapshots cache.SnapshotCache
	fanout    *cache.LinearCache // angzarr.Subscription, one per subscriber
	fanoutAll *cache.LinearCache // angzarr.FanoutConfig, one resource
	mux       *cache.MuxCache

	mu      sync.Mutex
	current *Translation
	index   workloadIndex
	access  *nodeAccess             // nil before the first topology
	nodes   map[string]*trackedNode // by node id
	streams map[int64]string        // stream id -> node id
	applied chan struct{}           // closed on the first applied topology
}

// trackedNode is a node with at least one open stream.
type trackedNode struct {
	node    *core.Node
	id      Identity
	streams int
	// caller is the identity that connected the node id ("" over
	// plaintext); every stream of the node id must be its.
	caller string
	// envoy: the node asked for Envoy resources (not only the fan-out
	// configuration), so a topology change re-checks its identity.
	envoy bool
}

// nodeIDHash keys snapshots by node id: each node gets its own entry,
// pointing at its class's (shared, immutable) snapshot.
type nodeIDHash struct{}

func (nodeIDHash) ID(node *core.Node) string { return node.GetId() }

// newPublisher creates the caches.
func newPublisher(log *slog.Logger, opts Options, m *metrics, tracer trace.Tracer) *Publisher {
	p := &Publisher{
		log:       log,
		opts:      opts,
		metrics:   m,
		tracer:    tracer,
		snapshots: cache.NewSnapshotCache(true, nodeIDHash{}, slogAdapter{log}),
		fanout:    cache.NewLinearCache(SubscriptionTypeURL, cache.WithLogger(slogAdapter{log})),
		fanoutAll: cache.NewLinearCache(FanoutTypeURL, cache.WithLogger(slogAdapter{log})),
		nodes:     map[string]*trackedNode{},
		streams:   map[int64]string{},
		applied:   make(chan struct{}),
	}
	classify := func(typeURL string) string {
		switch typeURL {
		case SubscriptionTypeURL, FanoutTypeURL:
			return typeURL
		}
		return "envoy"
	}
	p.mux = &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return classify(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return classify(r.GetTypeUrl()) },
		Caches: map[string]cache.Cache{
			"envoy": p.snapshots, SubscriptionTypeURL: p.fanout, FanoutTypeURL: p.fanoutAll,
		},
	}
	return p
}

// Cache is the cache the xDS server serves from.
func (p *Publisher) Cache() cache.Cache { return p.mux }

// Version is the version of the configuration being served ("" before the
// first good topology).
func (p *Publisher) Version() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return ""
	}
	return p.current.Version
}

// Applied is closed once a first topology has been applied.
func (p *Publisher) Applied() <-chan struct{} { return p.applied }

// Apply translates, verifies and publishes a topology. It returns the
// version served afterwards and, for a rejected topology, an error naming
// every problem (the previous version keeps serving).
func (p *Publisher) Apply(ctx context.Context, t *Topology) (string, error) {
	version, _, err := p.apply(ctx, t)
	return version, err
}

// apply is Apply that also reports whether the translation was the one
// already served. The translation and verification run in the span
// controlplane.translate, each node's new snapshot in a
// controlplane.publish, the fan-out resources in
// controlplane.publish_fanout, all children of ctx's span.
func (p *Publisher) apply(ctx context.Context, t *Topology) (string, bool, error) {
	start := time.Now()
	_, span := p.tracer.Start(ctx, spanTranslate, trace.WithAttributes(attribute.Int("domains", len(t.Domains)),
		attribute.Int("sagas", len(t.Sagas)), attribute.Int("projectors", len(t.Projectors))))
	tr, err := Translate(t, p.opts)
	if err == nil {
		err = VerifyTranslation(tr)
	}
	if err != nil {
		endSpan(span, outcomeRejected, err)
		p.metrics.snapshots.Add(ctx, 1, resultAttr(resultRejected))
		return p.Version(), false, fmt.Errorf("topology rejected, still serving version %q: %w", p.Version(), err)
	}
	span.SetAttributes(attribute.String("version", tr.Version), attribute.Int("classes", len(tr.Snapshots)))

	p.mu.Lock()
	defer p.mu.Unlock()
	unchanged := p.current != nil && p.current.Version == tr.Version
	if unchanged {
		endSpan(span, outcomeUnchanged, nil)
	} else {
		p.current = tr
		endSpan(span, outcomeApplied, nil)
	}
	// Workloads may move between domains without changing any resource
	// (an annotation added in Kubernetes): re-identify every node.
	p.index = indexWorkloads(t)
	p.access = newNodeAccess(t)
	var errs []error
	for nodeID, n := range p.nodes {
		before := n.id.Class()
		n.id = Identify(n.node, p.index)
		if n.caller != "" && n.envoy {
			if err := p.access.allowNode(caller{tls: true, id: n.caller}, nodeID, n.id); err != nil {
				// The node moved to a configuration its identity may not
				// have: it keeps what it had, and gets nothing new.
				p.metrics.denied.Add(ctx, 1, reasonAttr(deniedDomain))
				p.log.Warn("node withheld its new configuration", "node", nodeID, "identity", n.caller, "err", err)
				continue
			}
		}
		if unchanged && n.id.Class() == before {
			continue
		}
		if n.id.Class() != before {
			p.log.Info("node moved", "node", nodeID, "from", before.String(), "to", n.id.Class().String())
		}
		if err := p.setNodeSnapshotLocked(ctx, nodeID, n, triggerTopology); err != nil {
			errs = append(errs, err)
		}
	}
	if unchanged {
		p.metrics.snapshots.Add(ctx, 1, resultAttr(resultUnchanged))
		return tr.Version, true, errors.Join(errs...)
	}
	if err := p.publishFanout(ctx, tr); err != nil {
		errs = append(errs, err)
	}
	select {
	case <-p.applied:
	default:
		close(p.applied)
	}
	p.metrics.snapshots.Add(ctx, 1, resultAttr(resultApplied))
	p.metrics.translate.Record(ctx, time.Since(start).Seconds())
	return tr.Version, false, errors.Join(errs...)
}

// setNodeSnapshotLocked points the node at its class's snapshot, in the
// span controlplane.publish (trigger: a topology change or the node's
// first request). A node whose class does not exist (a domain named in its
// metadata that the topology lacks) keeps what it had, or gets nothing:
// fail closed.
func (p *Publisher) setNodeSnapshotLocked(ctx context.Context, nodeID string, n *trackedNode, trigger string) (err error) {
	if p.current == nil {
		return nil
	}
	ctx, span := p.tracer.Start(ctx, spanPublish, trace.WithAttributes(attribute.String("node.id", nodeID),
		attribute.String("node.class", n.id.Class().String()), attribute.String("version", p.current.Version), attribute.String("trigger", trigger)))
	s, ok := p.current.Snapshots[n.id.Class()]
	if !ok {
		p.log.Warn("node claims a domain the topology lacks; it gets no new configuration until the domain exists",
			"node", nodeID, "domain", n.id.Domain, "source", n.id.Source)
		endSpan(span, outcomeWithheld, nil)
		return nil
	}
	span.SetAttributes(resourceAttrs(s)...)
	defer func() { endSpan(span, outcomeApplied, err) }()
	// A shallow copy per node: resources and version maps are shared and
	// read-only.
	cp := *s
	if err := p.snapshots.SetSnapshot(ctx, nodeID, &cp); err != nil {
		return fmt.Errorf("node %s: %w", nodeID, err)
	}
	return nil
}

// publishFanout updates the LinearCaches, in the span
// controlplane.publish_fanout: the whole configuration when it changed,
// and the subscriptions that changed or are gone.
func (p *Publisher) publishFanout(ctx context.Context, tr *Translation) (err error) {
	fc := tr.Fanout
	_, span := p.tracer.Start(ctx, spanPublishFanout, trace.WithAttributes(attribute.String("version", tr.Version),
		attribute.Int("subscriptions", len(fc.GetSubscriptions())), attribute.Int("domains", len(fc.GetDomains()))))
	defer func() { endSpan(span, "", err) }()
	if old, ok := p.fanoutAll.GetResources()[FanoutName]; !ok || !proto.Equal(old, fc) {
		if err := p.fanoutAll.UpdateResource(FanoutName, fc); err != nil {
			return err
		}
	}
	have := p.fanout.GetResources()
	update := map[string]types.Resource{}
	for _, s := range fc.GetSubscriptions() {
		if old, ok := have[s.GetName()]; !ok || !proto.Equal(old, s) {
			update[s.GetName()] = s
		}
		delete(have, s.GetName())
	}
	var del []string
	for name := range have {
		del = append(del, name)
	}
	span.SetAttributes(attribute.Int("updated", len(update)), attribute.Int("removed", len(del)))
	if len(update) == 0 && len(del) == 0 {
		return nil
	}
	return p.fanout.UpdateResources(update, del)
}

// streamRequest records the node of a stream on its first request and
// gives the node its snapshot before the watch is created.
func (p *Publisher) streamRequest(ctx context.Context, streamID int64, c caller, typeURL string, node *core.Node) error {
	if node == nil {
		if c.tls {
			return denied(deniedNodeID, codes.InvalidArgument, "the stream's first request names no node")
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.authorizeLocked(ctx, streamID, c, typeURL, node); err != nil {
		return err
	}
	envoy := typeURL != SubscriptionTypeURL && typeURL != FanoutTypeURL
	nodeID := node.GetId()
	if _, known := p.streams[streamID]; known {
		if n := p.nodes[nodeID]; n != nil && envoy {
			n.envoy = true
		}
		return nil
	}
	p.streams[streamID] = nodeID
	n, ok := p.nodes[nodeID]
	if ok {
		n.streams++
		n.envoy = n.envoy || envoy
		return nil
	}
	n = &trackedNode{node: node, id: Identify(node, p.index), streams: 1, caller: c.id, envoy: envoy}
	p.nodes[nodeID] = n
	p.log.Info("node connected", "node", nodeID, "flavour", n.id.Flavour, "namespace", n.id.Namespace,
		"workload", n.id.Workload, "domain", n.id.Domain, "domain_source", n.id.Source)
	if err := p.setNodeSnapshotLocked(ctx, nodeID, n, triggerNodeConnected); err != nil {
		p.log.Error("set snapshot", "node", nodeID, "err", err)
	}
	return nil
}

// fetchRequest decides a unary Fetch (no stream, nothing tracked).
func (p *Publisher) fetchRequest(ctx context.Context, c caller, typeURL string, node *core.Node) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authorizeLocked(ctx, noStream, c, typeURL, node)
}

// noStream is the stream id of a Fetch: go-control-plane numbers streams
// from 1.
const noStream = -1

// streamClosed forgets the node when its last stream closes.
func (p *Publisher) streamClosed(streamID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	nodeID, ok := p.streams[streamID]
	if !ok {
		return
	}
	delete(p.streams, streamID)
	n := p.nodes[nodeID]
	if n == nil {
		return
	}
	if n.streams--; n.streams <= 0 {
		delete(p.nodes, nodeID)
		p.snapshots.ClearSnapshot(nodeID)
		p.log.Info("node disconnected", "node", nodeID)
	}
}

// connectedNodes is the number of nodes with an open stream.
func (p *Publisher) connectedNodes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int64(len(p.nodes))
}

// identity returns what is known about a connected node.
func (p *Publisher) identity(nodeID string) (Identity, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.nodes[nodeID]
	if !ok {
		return Identity{}, false
	}
	return n.id, true
}

// slogAdapter lets go-control-plane log through slog (debug and info at
// debug level: the cache is chatty).
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(format string, args ...any) { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Infof(format string, args ...any)  { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Warnf(format string, args ...any)  { a.l.Warn(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Errorf(format string, args ...any) { a.l.Error(fmt.Sprintf(format, args...)) }
