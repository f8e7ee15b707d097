package controlplane

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Span names of the control plane (docs/observability.md). A topology
// change is one trace: load_topology, with translate and a publish per
// node (and publish_fanout) as children. A node's first request, and each
// ACK or NACK a proxy sends, start a trace of their own.
const (
	spanLoadTopology  = "controlplane.load_topology"
	spanTranslate     = "controlplane.translate"
	spanPublish       = "controlplane.publish"
	spanPublishFanout = "controlplane.publish_fanout"
	spanACK           = "controlplane.ack"
	spanNACK          = "controlplane.nack"
)

// tracerName is the instrumentation scope of the control plane's spans
// (the same as its meter's).
const tracerName = "github.com/angzarr-mesh/angzarr/controlplane"

// Attribute values of a span's outcome.
const (
	outcomeApplied   = resultApplied
	outcomeUnchanged = resultUnchanged
	outcomeRejected  = resultRejected
	// outcomeWaiting: a source reported, another enabled one has not yet.
	outcomeWaiting = "waiting"
	// outcomeWithheld: the node's domain is not in the topology; it gets
	// nothing new (fail closed).
	outcomeWithheld = "withheld"
)

// Triggers of controlplane.publish.
const (
	triggerTopology      = "topology"
	triggerNodeConnected = "node_connected"
)

// resourceAttrs counts the resources of a snapshot by type.
func resourceAttrs(s *cache.Snapshot) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.Int("resources.clusters", len(s.Resources[types.Cluster].Items)),
		attribute.Int("resources.listeners", len(s.Resources[types.Listener].Items)),
		attribute.Int("resources.routes", len(s.Resources[types.Route].Items)),
		attribute.Int("resources.extension_configs", len(s.Resources[types.ExtensionConfig].Items)),
	}
}

// endSpan ends span with outcome, and err's status when err is not nil.
func endSpan(span trace.Span, outcome string, err error) {
	if outcome != "" {
		span.SetAttributes(attribute.String("outcome", outcome))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
