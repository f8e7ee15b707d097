package controlplane

import (
	"context"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// callbacks observe the xDS streams: they track connected nodes (and give
// a node its snapshot on its first request), count pushes, and log and
// count NACKs.
//
// A NACK carries the last version the proxy accepted, which the snapshot
// cache takes as "behind" and answers at once with the very configuration
// just rejected: a hot loop with a real Envoy. So the callbacks remember
// the version of each response sent (by stream, type and nonce) and, on a
// NACK, present the rejected version to the cache, which then waits for a
// newer configuration, as istiod does.
type callbacks struct {
	p *Publisher

	mu   sync.Mutex
	sent map[int64]map[string]sentResponse // stream -> type URL -> last response
}

type sentResponse struct{ nonce, version string }

func newCallbacks(p *Publisher) *callbacks {
	return &callbacks{p: p, sent: map[int64]map[string]sentResponse{}}
}

var _ serverv3.Callbacks = (*callbacks)(nil)

func (c *callbacks) OnStreamOpen(context.Context, int64, string) error { return nil }

func (c *callbacks) OnStreamClosed(id int64, _ *core.Node) {
	c.mu.Lock()
	delete(c.sent, id)
	c.mu.Unlock()
	c.p.streamClosed(id)
}

func (c *callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	c.p.streamRequest(context.Background(), id, req.GetNode())
	if d := req.GetErrorDetail(); d != nil {
		c.nack(req.GetNode().GetId(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), d.GetMessage())
		c.mu.Lock()
		if s, ok := c.sent[id][req.GetTypeUrl()]; ok && s.nonce == req.GetResponseNonce() {
			req.VersionInfo = s.version
		}
		c.mu.Unlock()
	}
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

func (c *callbacks) OnDeltaStreamOpen(context.Context, int64, string) error { return nil }

func (c *callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) { c.p.streamClosed(id) }

func (c *callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	c.p.streamRequest(context.Background(), id, req.GetNode())
	if d := req.GetErrorDetail(); d != nil {
		c.nack(req.GetNode().GetId(), req.GetTypeUrl(), req.GetResponseNonce(), "", d.GetMessage())
	}
	return nil
}

func (c *callbacks) OnStreamDeltaResponse(_ int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.p.metrics.pushes.Add(context.Background(), 1, typeAttr(resp.GetTypeUrl()))
}

func (c *callbacks) OnFetchRequest(_ context.Context, req *discovery.DiscoveryRequest) error {
	return nil
}

func (c *callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// nack logs and counts a rejected response.
func (c *callbacks) nack(nodeID, typeURL, nonce, version, message string) {
	id, _ := c.p.identity(nodeID)
	c.p.log.Warn("proxy rejected configuration (NACK)", "node", nodeID, "domain", id.Domain,
		"type_url", typeURL, "nonce", nonce, "acked_version", version, "error", message)
	c.p.metrics.nacks.Add(context.Background(), 1, typeAttr(typeURL))
}
