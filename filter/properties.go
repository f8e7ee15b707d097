package filter

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
	// PropertyOutcome is the command's Outcome (metrics.go), recorded when
	// the command finishes.
	PropertyOutcome = "angzarr.outcome"
)

// describe records the domain, root and correlation id of a validated
// command (setCorrelation calls it).
func (s *Stream) describe() {
	if s.cover == nil {
		return
	}
	s.described = true
	s.setProperty(PropertyDomain, s.cover.Domain)
	s.setProperty(PropertyRoot, rootString(s.cover.Root))
	s.setProperty(PropertyCorrelationID, s.correlation)
}

// recordOutcome records how the command ended (finish calls it). A command
// refused before it was described gets its domain too when the workload
// serves it: an unknown domain comes from the client and must not become a
// label value.
func (s *Stream) recordOutcome(o Outcome) {
	if !s.described && s.domain != "" && s.p.cfg.Serves(s.domain) {
		s.setProperty(PropertyDomain, s.domain)
	}
	s.setProperty(PropertyOutcome, string(o))
}

// setProperty stores one property on the stream. A failure is not the
// command's: the host may refuse it (Envoy once the stream's filter state
// is gone, as in proxy_on_delete), and the command goes on unobserved.
func (s *Stream) setProperty(path, value string) {
	_ = s.host().SetProperty(path, value)
}
