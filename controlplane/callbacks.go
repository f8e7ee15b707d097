package controlplane

import (
	"context"
	"errors"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// callbacks observe the xDS streams: they track connected nodes (and give
// a node its snapshot on its first request), count pushes, log and count
// NACKs, and record every ACK and NACK as a span (controlplane.ack,
// controlplane.nack with the error status).
//
// A NACK carries the last version the proxy accepted, which the snapshot
// cache takes as "behind" and answers at once with the very configuration
// just rejected: a hot loop with a real Envoy. So the callbacks remember
// the version of each response sent (by stream, type and nonce) and, on a
// NACK, present the rejected version to the cache, which then waits for a
// newer configuration, as istiod does.
type callbacks struct {
	p *Publisher

	mu      sync.Mutex
	sent    map[int64]map[string]sentResponse // stream -> type URL -> last response
	callers map[int64]caller                  // stream -> who opened it
}

type sentResponse struct{ nonce, version string }

func newCallbacks(p *Publisher) *callbacks {
	return &callbacks{p: p, sent: map[int64]map[string]sentResponse{}, callers: map[int64]caller{}}
}

var _ serverv3.Callbacks = (*callbacks)(nil)

// OnStreamOpen remembers who opened the stream: the requests
// (OnStreamRequest) carry no context, the stream's does.
func (c *callbacks) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	c.mu.Lock()
	c.callers[id] = callerOf(ctx)
	c.mu.Unlock()
	return nil
}

// caller is who opened stream id.
func (c *callbacks) caller(id int64) caller {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.callers[id]
	if !ok {
		return caller{tls: true, err: errors.New("unknown stream")}
	}
	return cl
}

func (c *callbacks) OnStreamClosed(id int64, _ *core.Node) {
	c.mu.Lock()
	delete(c.sent, id)
	delete(c.callers, id)
	c.mu.Unlock()
	c.p.streamClosed(id)
}

func (c *callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	if err := c.p.streamRequest(context.Background(), id, c.caller(id), req.GetTypeUrl(), req.GetNode()); err != nil {
		return err
	}
	if req.GetResponseNonce() == "" && req.GetErrorDetail() == nil {
		return nil // a subscription, not the answer to a response
	}
	var rejected string // the version of the response answered, when known
	c.mu.Lock()
	if s, ok := c.sent[id][req.GetTypeUrl()]; ok && s.nonce == req.GetResponseNonce() {
		rejected = s.version
	}
	c.mu.Unlock()
	r := reply{nodeID: req.GetNode().GetId(), typeURL: req.GetTypeUrl(), nonce: req.GetResponseNonce(), version: req.GetVersionInfo()}
	if d := req.GetErrorDetail(); d != nil {
		r.rejected = rejected
		c.nack(r, d.GetMessage())
		if rejected != "" {
			req.VersionInfo = rejected
		}
		return nil
	}
	c.ack(r)
	return nil
}

func (c *callbacks) OnStreamResponse(ctx context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	c.mu.Lock()
	if c.sent[id] == nil {
		c.sent[id] = map[string]sentResponse{}
	}
	c.sent[id][resp.GetTypeUrl()] = sentResponse{nonce: resp.GetNonce(), version: resp.GetVersionInfo()}
	c.mu.Unlock()
	c.p.metrics.pushes.Add(ctx, 1, typeAttr(resp.GetTypeUrl()))
}

func (c *callbacks) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	return c.OnStreamOpen(ctx, id, typeURL)
}

func (c *callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) {
	c.mu.Lock()
	delete(c.callers, id)
	c.mu.Unlock()
	c.p.streamClosed(id)
}

func (c *callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	if err := c.p.streamRequest(context.Background(), id, c.caller(id), req.GetTypeUrl(), req.GetNode()); err != nil {
		return err
	}
	if req.GetResponseNonce() == "" && req.GetErrorDetail() == nil {
		return nil
	}
	r := reply{nodeID: req.GetNode().GetId(), typeURL: req.GetTypeUrl(), nonce: req.GetResponseNonce(), delta: true}
	if d := req.GetErrorDetail(); d != nil {
		c.nack(r, d.GetMessage())
		return nil
	}
	c.ack(r)
	return nil
}

func (c *callbacks) OnStreamDeltaResponse(_ int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.p.metrics.pushes.Add(context.Background(), 1, typeAttr(resp.GetTypeUrl()))
}

// OnFetchRequest decides a unary Fetch like a stream's request.
func (c *callbacks) OnFetchRequest(ctx context.Context, req *discovery.DiscoveryRequest) error {
	return c.p.fetchRequest(ctx, callerOf(ctx), req.GetTypeUrl(), req.GetNode())
}

func (c *callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// reply is a proxy's answer (ACK or NACK) to a response.
type reply struct {
	nodeID, typeURL, nonce string
	// version is the last version the proxy accepted (state of the world
	// only): on an ACK the one it accepted now.
	version string
	// rejected is the version of the response a NACK rejects, when known.
	rejected string
	delta    bool
}

// attrs are the span attributes of r.
func (r reply) attrs() []attribute.KeyValue {
	a := []attribute.KeyValue{
		attribute.String("node.id", r.nodeID), attribute.String("type_url", r.typeURL),
		attribute.String("nonce", r.nonce), attribute.Bool("delta", r.delta),
	}
	if r.version != "" {
		a = append(a, attribute.String("version", r.version))
	}
	if r.rejected != "" {
		a = append(a, attribute.String("rejected_version", r.rejected))
	}
	return a
}

// ack records an accepted response in the span controlplane.ack.
func (c *callbacks) ack(r reply) {
	_, span := c.p.tracer.Start(context.Background(), spanACK, trace.WithAttributes(r.attrs()...))
	if span.IsRecording() {
		id, _ := c.p.identity(r.nodeID)
		span.SetAttributes(attribute.String("domain", id.Domain))
	}
	span.End()
}

// nack logs and counts a rejected response, and records it in the span
// controlplane.nack with an error status and the proxy's message.
func (c *callbacks) nack(r reply, message string) {
	id, _ := c.p.identity(r.nodeID)
	c.p.log.Warn("proxy rejected configuration (NACK)", "node", r.nodeID, "domain", id.Domain,
		"type_url", r.typeURL, "nonce", r.nonce, "acked_version", r.version, "rejected_version", r.rejected, "error", message)
	c.p.metrics.nacks.Add(context.Background(), 1, typeAttr(r.typeURL))
	_, span := c.p.tracer.Start(context.Background(), spanNACK, trace.WithAttributes(append(r.attrs(), attribute.String("domain", id.Domain))...))
	endSpan(span, "", errors.New(message))
}
