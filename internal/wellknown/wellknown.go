// Package wellknown defines the names that more than one component of
// Angzarr Mesh uses on the wire, so that each is written once: the filter
// (built for wasip1) sets them, and the event service, the local proxy and
// the clients read them. Constants only: it imports nothing.
package wellknown

// CorrelationHeader is the response header that returns a command's
// correlation id to the client: the filter sets it on every command's
// response, the event service's CommandGateway on its own.
const CorrelationHeader = "x-angzarr-correlation-id"

// Stream properties: the facts about a command the filter hands to the
// proxy with proxy_set_property, so that the proxy's own telemetry (angzarr
// proxy's spans and its angzarr.command.* metrics; Envoy's access logs
// through the filter state "wasm.<name>") can name the command without
// parsing its body. Values are plain strings.
const (
	// PropertyDomain is the command's domain, recorded once the command is
	// validated (so only a domain the workload serves), or at the end for
	// a command refused before that whose domain is served.
	PropertyDomain = "angzarr.domain"
	// PropertyRoot is the aggregate root as the event service's spans
	// render it: the UUID text of the 16 root bytes.
	PropertyRoot = "angzarr.root"
	// PropertyCorrelationID is the command's correlation id, given or
	// generated.
	PropertyCorrelationID = "angzarr.correlation_id"
	// PropertyOutcome is the command's outcome (filter/metrics.go),
	// recorded when the command finishes.
	PropertyOutcome = "angzarr.outcome"
)
