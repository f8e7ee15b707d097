package controlplane

import (
	"context"
	"errors"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// nodeAccess decides which identity may receive which configuration when
// the control plane serves xDS over mTLS. A node's id and metadata are
// the proxy's own claims; its certificate is not: a domain's
// configuration goes only to that domain's identities (Domain.identities,
// the writers of the access policy), a gateway's (a standalone node that
// serves no domain) only to identity.gateways, the fan-out configuration
// (subscriptions and the access policy) only to the event service, the
// admins and the topology's readers (the console). An Istio sidecar that
// serves no domain gets a pass-through configuration, which any identity
// of the mesh may have. Over plaintext (--insecure, or Istio, where the
// control plane serves like istiod's 15010) there is no identity and no
// binding.
type nodeAccess struct {
	domains  map[string]map[string]bool // domain -> identities
	gateways map[string]bool
	fanout   map[string]bool
}

// newNodeAccess derives the rules from a topology.
func newNodeAccess(t *Topology) *nodeAccess {
	td := t.trustDomain()
	a := &nodeAccess{domains: map[string]map[string]bool{}, gateways: set(t.Identity.Gateways),
		fanout: set(append(append([]string{t.eventServiceIdentity()}, t.Identity.Admins...), t.Identity.Readers...))}
	for i := range t.Domains {
		a.domains[t.Domains[i].Name] = set(t.Domains[i].identities(td))
	}
	return a
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// caller is who opened an xDS stream: tls is false on a plaintext server.
type caller struct {
	tls bool
	id  string
	err error // the TLS peer had no usable identity
}

// callerOf tells who calls from the stream's context: the identity in the
// TLS peer's certificate, which the server's credentials verified; no
// identity at all on a plaintext server.
func callerOf(ctx context.Context) caller {
	if pr, ok := peer.FromContext(ctx); !ok {
		return caller{tls: true, err: errors.New("no peer")}
	} else if _, ok := pr.AuthInfo.(credentials.TLSInfo); !ok {
		return caller{}
	}
	id, err := identity.FromPeer(ctx)
	if err != nil {
		return caller{tls: true, err: err}
	}
	return caller{tls: true, id: id.String()}
}

// Reasons of angzarr.controlplane.xds.denied.
const (
	deniedUnauthenticated = "unauthenticated"
	deniedDomain          = "domain"
	deniedGateway         = "gateway"
	deniedFanout          = "fanout"
	deniedNodeID          = "node_id"
)

// errDenied is a refusal with its reason for the metric.
type errDenied struct {
	reason string
	err    error
}

func (e *errDenied) Error() string { return e.err.Error() }
func (e *errDenied) Unwrap() error { return e.err }

// GRPCStatus lets the xDS server answer the stream with the refusal.
func (e *errDenied) GRPCStatus() *status.Status { s, _ := status.FromError(e.err); return s }

func denied(reason string, code codes.Code, format string, args ...any) error {
	return &errDenied{reason: reason, err: status.Errorf(code, format, args...)}
}

// allowFanout decides a request for the fan-out configuration.
func (a *nodeAccess) allowFanout(c caller) error {
	if !a.fanout[c.id] {
		return denied(deniedFanout, codes.PermissionDenied, "%s may not receive the fan-out configuration (rule: identity.eventService, admins, readers)", c.id)
	}
	return nil
}

// allowNode decides whether c may receive the configuration of a node
// identified as id (node is its id, for the message).
func (a *nodeAccess) allowNode(c caller, node string, id Identity) error {
	switch {
	case id.Domain != "":
		ids, ok := a.domains[id.Domain]
		if !ok {
			return denied(deniedDomain, codes.PermissionDenied, "node %q claims domain %q, which the topology lacks", node, id.Domain)
		}
		if !ids[c.id] {
			return denied(deniedDomain, codes.PermissionDenied, "%s may not receive the configuration of node %q of domain %q (rule: domains[%s].identities)", c.id, node, id.Domain, id.Domain)
		}
	case id.Flavour == FlavourEnvoy && !a.gateways[c.id]:
		return denied(deniedGateway, codes.PermissionDenied, "%s may not receive the configuration of gateway node %q (rule: identity.gateways)", c.id, node)
	}
	return nil
}

// authorizeLocked decides one discovery request of stream streamID from c
// (p.mu held): a stream keeps the node id of its first request, a node id
// belongs to the identity that first connected it, and the configuration
// the node id receives must be one c may have. A refusal is logged and
// counted.
func (p *Publisher) authorizeLocked(ctx context.Context, streamID int64, c caller, typeURL string, node *core.Node) error {
	if !c.tls {
		return nil
	}
	if p.access == nil {
		// Nothing to serve yet, nor rules to decide by: the client
		// reconnects (Envoy and FanoutClient back off).
		return status.Error(codes.Unavailable, "no topology applied yet")
	}
	err := p.decideLocked(streamID, c, typeURL, node)
	if err != nil {
		var d *errDenied
		reason := deniedUnauthenticated
		if errors.As(err, &d) {
			reason = d.reason
		}
		p.metrics.denied.Add(ctx, 1, reasonAttr(reason))
		p.log.Warn("xDS request refused", "node", node.GetId(), "identity", c.id, "type_url", typeURL, "reason", reason, "err", err)
	}
	return err
}

func (p *Publisher) decideLocked(streamID int64, c caller, typeURL string, node *core.Node) error {
	if c.err != nil || c.id == "" {
		return denied(deniedUnauthenticated, codes.Unauthenticated, "no identity in the client certificate: %v", c.err)
	}
	nodeID := node.GetId()
	if first, known := p.streams[streamID]; known && first != nodeID {
		return denied(deniedNodeID, codes.PermissionDenied, "the stream's node id is %q, not %q: a stream may not change its node", first, nodeID)
	}
	n := p.nodes[nodeID]
	if n != nil && n.caller != c.id {
		return denied(deniedNodeID, codes.PermissionDenied, "node id %q is connected as %s, not %s", nodeID, n.caller, c.id)
	}
	switch typeURL {
	case SubscriptionTypeURL, FanoutTypeURL:
		return p.access.allowFanout(c)
	}
	id := Identify(node, p.index)
	if n != nil {
		id = n.id // what the cache serves for the node id
	}
	return p.access.allowNode(c, nodeID, id)
}
