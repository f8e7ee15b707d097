package fanout

import (
	"errors"
	"fmt"
	"slices"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Validate reports every problem with a fan-out configuration: subscriber
// names (unique, usable in storage keys), kinds, addresses, source and
// target domains, and domain endpoints.
func Validate(cfg *pb.FanoutConfig) error {
	var errs []error
	names := map[string]bool{}
	for i, s := range cfg.GetSubscriptions() {
		at := fmt.Sprintf("subscriptions[%d]", i)
		if err := store.ValidateDomain(at+".name", s.GetName()); err != nil {
			errs = append(errs, err)
		} else if names[s.GetName()] {
			errs = append(errs, fmt.Errorf("%s.name: %q appears twice", at, s.GetName()))
		}
		names[s.GetName()] = true
		switch s.GetKind() {
		case pb.SubscriberKind_SUBSCRIBER_KIND_SAGA:
		case pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER:
			if err := store.ValidateDomain(at+".domain", ProcessManagerDomain(s)); err != nil {
				errs = append(errs, err)
			} else if slices.Contains(s.GetSourceDomains(), ProcessManagerDomain(s)) || slices.Contains(s.GetTargetDomains(), ProcessManagerDomain(s)) {
				errs = append(errs, fmt.Errorf("%s.domain: %q is its own stream's domain, not a source or target", at, ProcessManagerDomain(s)))
			}
		case pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR:
			if len(s.GetTargetDomains()) > 0 {
				errs = append(errs, fmt.Errorf("%s.target_domains: a projector sends no commands", at))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.kind: want SUBSCRIBER_KIND_SAGA, SUBSCRIBER_KIND_PROJECTOR or SUBSCRIBER_KIND_PROCESS_MANAGER, got %v", at, s.GetKind()))
		}
		if s.GetDomain() != "" && s.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER {
			errs = append(errs, fmt.Errorf("%s.domain: only process managers have a domain of their own", at))
		}
		if s.GetAddress() == "" {
			errs = append(errs, fmt.Errorf("%s.address: required", at))
		}
		if len(s.GetSourceDomains()) == 0 {
			errs = append(errs, fmt.Errorf("%s.source_domains: at least one domain", at))
		}
		for j, d := range s.GetSourceDomains() {
			if err := store.ValidateDomain(fmt.Sprintf("%s.source_domains[%d]", at, j), d); err != nil {
				errs = append(errs, err)
			}
		}
		for j, a := range s.GetCompensationFallback() {
			if _, ok := pb.CompensationAction_name[int32(a)]; !ok || a == pb.CompensationAction_COMPENSATION_ACTION_UNSPECIFIED {
				errs = append(errs, fmt.Errorf("%s.compensation_fallback[%d]: not an action: %v", at, j, a))
			}
		}
		if len(s.GetCompensationFallback()) > 0 && s.GetKind() == pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR {
			errs = append(errs, fmt.Errorf("%s.compensation_fallback: only sagas and process managers compensate", at))
		}
		for j, d := range s.GetTargetDomains() {
			if err := store.ValidateDomain(fmt.Sprintf("%s.target_domains[%d]", at, j), d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if f := cfg.GetFailureDomain(); f != "" {
		if err := store.ValidateDomain("failure_domain", f); err != nil {
			errs = append(errs, err)
		}
	}
	seen := map[string]bool{}
	for i, d := range cfg.GetDomains() {
		at := fmt.Sprintf("domains[%d]", i)
		if err := store.ValidateDomain(at+".domain", d.GetDomain()); err != nil {
			errs = append(errs, err)
		} else if seen[d.GetDomain()] {
			errs = append(errs, fmt.Errorf("%s.domain: %q appears twice", at, d.GetDomain()))
		}
		seen[d.GetDomain()] = true
		if d.GetAddress() == "" {
			errs = append(errs, fmt.Errorf("%s.address: required", at))
		}
	}
	return errors.Join(errs...)
}

// startsLatest reports whether a subscriber without a checkpoint starts at
// the end of the log: LATEST, or unspecified for a saga or process manager.
func startsLatest(s *pb.Subscription) bool {
	switch s.GetStartPosition() {
	case pb.StartPosition_START_POSITION_LATEST:
		return true
	case pb.StartPosition_START_POSITION_EARLIEST:
		return false
	}
	return s.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR
}

// targets reports whether a saga may send commands to domain.
func targets(s *pb.Subscription, domain string) bool {
	return slices.Contains(s.GetTargetDomains(), domain)
}
