package controlplane

import (
	"fmt"
	"slices"
	"sort"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// WorkloadIdentities maps workload identities (SPIFFE IDs
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>) to the roles
// of the event service's access policy that are not a domain's.
type WorkloadIdentities struct {
	// TrustDomain of the mesh. Default "cluster.local" (Istio's).
	TrustDomain string `json:"trustDomain,omitempty"`
	// EventService is the event service's own identity: its fan-out
	// dispatcher reads every domain's log. Default
	// spiffe://<trust domain>/ns/angzarr-system/sa/angzarr-eventsvc.
	EventService string `json:"eventService,omitempty"`
	// Admins may use FanoutAdmin (dead letters, replay, reset), forced
	// sequences, and read and write every domain: operators.
	Admins []string `json:"admins,omitempty"`
	// Readers may read every domain (the console, the CLI's events verb).
	Readers []string `json:"readers,omitempty"`
	// ControlPlane is the control plane's own identity: it registers the
	// domains' descriptors with the event service's schema registry.
	// Default spiffe://<trust domain>/ns/angzarr-system/sa/angzarr-controlplane.
	ControlPlane string `json:"controlPlane,omitempty"`
	// Gateways are the identities of standalone proxies that serve no
	// single domain (a gateway runs every domain's filter): when the
	// control plane serves xDS over mTLS, only they (and no domain's
	// proxy) receive that configuration. Istio sidecars that serve no
	// domain get a pass-through configuration and need no entry.
	Gateways []string `json:"gateways,omitempty"`
	// Proxies says every proxy runs with mTLS (Istio under STRICT
	// PeerAuthentication, `angzarr proxy` with certificates): the filters
	// then trust the caller identity the proxy sets, Record is allowed only
	// to a domain's recorders (and the admins), and idempotency keys belong
	// to their caller (saga keys stay shared among the event service and
	// the domains' proxies). Default false: callers are anonymous.
	Proxies bool `json:"proxies,omitempty"`
}

// DefaultTrustDomain is Istio's default trust domain.
const DefaultTrustDomain = "cluster.local"

// trustDomain is the configured trust domain or the default.
func (t *Topology) trustDomain() string {
	if t.Identity.TrustDomain != "" {
		return t.Identity.TrustDomain
	}
	return DefaultTrustDomain
}

// eventServiceIdentity is the event service's identity.
func (t *Topology) eventServiceIdentity() string {
	if t.Identity.EventService != "" {
		return t.Identity.EventService
	}
	return "spiffe://" + t.trustDomain() + "/ns/angzarr-system/sa/angzarr-eventsvc"
}

// controlPlaneIdentity is the control plane's identity.
func (t *Topology) controlPlaneIdentity() string {
	if t.Identity.ControlPlane != "" {
		return t.Identity.ControlPlane
	}
	return "spiffe://" + t.trustDomain() + "/ns/angzarr-system/sa/angzarr-controlplane"
}

// identities are the domain's writer identities: declared, or one per
// workload with a namespace, named after the workload.
func (d *Domain) identities(td string) []string {
	if len(d.Identities) > 0 {
		return d.Identities
	}
	var out []string
	for _, w := range d.Workloads {
		if w.Namespace == "" {
			continue
		}
		if id, err := identity.New(td, w.Namespace, w.Name); err == nil {
			out = append(out, id.String())
		}
	}
	return out
}

// validateIdentity checks every identity of the topology: a workload SPIFFE
// ID of the topology's trust domain.
func (t *Topology) validateIdentity() []error {
	var errs []error
	td := t.trustDomain()
	if _, err := identity.New(td, "ns", "sa"); err != nil {
		return []error{fmt.Errorf("identity.trustDomain: %v", err)}
	}
	check := func(path string, ids ...string) {
		for i, s := range ids {
			id, err := identity.Parse(s)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s[%d]: %v", path, i, err))
			case id.TrustDomain().Name() != td:
				errs = append(errs, fmt.Errorf("%s[%d]: %q is not in trust domain %q", path, i, s, td))
			}
		}
	}
	if t.Identity.EventService != "" {
		check("identity.eventService", t.Identity.EventService)
	}
	if t.Identity.ControlPlane != "" {
		check("identity.controlPlane", t.Identity.ControlPlane)
	}
	check("identity.admins", t.Identity.Admins...)
	check("identity.readers", t.Identity.Readers...)
	check("identity.gateways", t.Identity.Gateways...)
	for _, d := range t.Domains {
		p := "domains[" + d.Name + "]"
		check(p+".identities", d.Identities...)
		check(p+".readers", d.Readers...)
		check(p+".recorders", d.Recorders...)
	}
	for _, p := range t.Projectors {
		if p.Identity != "" {
			check("projectors["+p.Name+"].identity", p.Identity)
		}
	}
	for _, s := range t.Sagas {
		if s.Identity != "" {
			check("sagas["+s.Name+"].identity", s.Identity)
		}
	}
	return errs
}

// translateAccess derives the event service's access policy: each domain's
// workloads write it, projectors and sagas read their domains, the event
// service dispatches, the topology's admins and readers as declared.
func translateAccess(t *Topology) *angzarr.AccessPolicy {
	td := t.trustDomain()
	ap := &angzarr.AccessPolicy{
		Admins:           sortedUnique(t.Identity.Admins),
		Dispatchers:      []string{t.eventServiceIdentity()},
		Readers:          sortedUnique(t.Identity.Readers),
		SchemaRegistrars: []string{t.controlPlaneIdentity()},
	}
	readers := map[string][]string{}
	for _, p := range t.Projectors {
		if p.Identity != "" {
			for _, d := range p.Domains {
				readers[d] = append(readers[d], p.Identity)
			}
		}
	}
	for _, s := range t.Sagas {
		if s.Identity != "" {
			for _, d := range s.Sources {
				readers[d] = append(readers[d], s.Identity)
			}
		}
	}
	for i := range t.Domains {
		d := &t.Domains[i]
		ap.Domains = append(ap.Domains, &angzarr.DomainAccess{
			Domain:               d.Name,
			Writers:              sortedUnique(d.identities(td)),
			Readers:              sortedUnique(append(slices.Clone(d.Readers), readers[d.Name]...)),
			Recorders:            sortedUnique(d.Recorders),
			AllowSnapshotOnly:    d.AllowSnapshotOnly,
			AllowForcedSequences: d.AllowForcedSequences,
			AllowUntypedEvents:   d.AllowUntypedEvents,
		})
	}
	sort.Slice(ap.Domains, func(i, j int) bool { return ap.Domains[i].Domain < ap.Domains[j].Domain })
	return ap
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// callerIdentity sets the filter's caller-identity settings for domain d
// when the topology says proxies run with mTLS.
func callerIdentity(t *Topology, d *Domain, c *config.Config) {
	if !t.Identity.Proxies {
		return
	}
	td := t.trustDomain()
	c.CallerIdentity = true
	c.Recorders = sortedUnique(append(slices.Clone(d.Recorders), t.Identity.Admins...))
	issuers := []string{t.eventServiceIdentity()}
	for i := range t.Domains {
		issuers = append(issuers, t.Domains[i].identities(td)...)
	}
	c.SagaIssuers = sortedUnique(issuers)
}
