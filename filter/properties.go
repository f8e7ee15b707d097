package filter

import "github.com/angzarr-mesh/angzarr/internal/wellknown"

// Stream properties: the facts about a command the filter hands to the
// proxy with proxy_set_property (see package wellknown).
const (
	PropertyDomain        = wellknown.PropertyDomain
	PropertyRoot          = wellknown.PropertyRoot
	PropertyCorrelationID = wellknown.PropertyCorrelationID
	PropertyOutcome       = wellknown.PropertyOutcome
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
