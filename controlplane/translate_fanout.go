package controlplane

import (
	"net"
	"slices"
	"sort"
	"strconv"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// translateFanout lists every saga, process manager and projector as the subscription the
// event service's dispatcher needs, sorted by name.
func translateFanout(t *Topology) *angzarr.FanoutConfig {
	fc := &angzarr.FanoutConfig{FailureDomain: t.EventService.FailureDomain}
	for _, p := range t.Projectors {
		fc.Subscriptions = append(fc.Subscriptions, &angzarr.Subscription{
			Name:          p.Name,
			Kind:          angzarr.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR,
			Address:       p.Address,
			Cluster:       projectorCluster(p.Name),
			SourceDomains: sorted(p.Domains),
			Synchronous:   p.Synchronous,
			StartPosition: startPosition(p.StartPosition, angzarr.StartPosition_START_POSITION_EARLIEST),
		})
	}
	for _, s := range t.Sagas {
		fc.Subscriptions = append(fc.Subscriptions, &angzarr.Subscription{
			Name:                 s.Name,
			Kind:                 angzarr.SubscriberKind_SUBSCRIBER_KIND_SAGA,
			Address:              s.Address,
			Cluster:              sagaCluster(s.Name),
			SourceDomains:        sorted(s.Sources),
			TargetDomains:        sorted(s.Targets),
			StartPosition:        startPosition(s.StartPosition, angzarr.StartPosition_START_POSITION_LATEST),
			CompensationFallback: compensationActions(s.CompensationFallback),
		})
	}
	for _, pm := range t.ProcessManagers {
		fc.Subscriptions = append(fc.Subscriptions, &angzarr.Subscription{
			Name:                 pm.Name,
			Kind:                 angzarr.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER,
			Address:              pm.Address,
			Domain:               pm.domain(),
			SourceDomains:        sorted(pm.Sources),
			TargetDomains:        sorted(pm.Targets),
			StartPosition:        startPosition(pm.StartPosition, angzarr.StartPosition_START_POSITION_LATEST),
			CompensationFallback: compensationActions(pm.CompensationFallback),
		})
	}
	sort.Slice(fc.Subscriptions, func(i, j int) bool { return fc.Subscriptions[i].Name < fc.Subscriptions[j].Name })
	// Where each domain's coordinator (its filter) is: Domain.Coordinator,
	// by default the service, whose inbound sidecar runs the filter.
	for i := range t.Domains {
		d := &t.Domains[i]
		host, port := d.coordinator()
		ep := &angzarr.DomainEndpoint{
			Domain:  d.Name,
			Address: net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10)),
		}
		for _, u := range d.Upcasters {
			ep.Upcasters = append(ep.Upcasters, &angzarr.UpcasterEndpoint{Address: u.Address, Types: u.Types})
		}
		fc.Domains = append(fc.Domains, ep)
	}
	sort.Slice(fc.Domains, func(i, j int) bool { return fc.Domains[i].Domain < fc.Domains[j].Domain })
	fc.Access = translateAccess(t)
	return fc
}

func startPosition(s string, def angzarr.StartPosition) angzarr.StartPosition {
	switch s {
	case StartEarliest:
		return angzarr.StartPosition_START_POSITION_EARLIEST
	case StartLatest:
		return angzarr.StartPosition_START_POSITION_LATEST
	}
	return def
}

// CompensationActions are the topology's names of the compensation
// actions (Saga.CompensationFallback).
var CompensationActions = map[string]angzarr.CompensationAction{
	"record-failure": angzarr.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE,
	"dead-letter":    angzarr.CompensationAction_COMPENSATION_ACTION_DEAD_LETTER,
	"escalate":       angzarr.CompensationAction_COMPENSATION_ACTION_ESCALATE,
	"stop":           angzarr.CompensationAction_COMPENSATION_ACTION_STOP,
}

// compensationActions maps the topology's action names (validated).
func compensationActions(names []string) []angzarr.CompensationAction {
	var out []angzarr.CompensationAction
	for _, n := range names {
		out = append(out, CompensationActions[n])
	}
	return out
}

func sorted(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}
