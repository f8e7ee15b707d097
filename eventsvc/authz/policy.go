package authz

import (
	"errors"
	"fmt"
	"slices"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Policy is a validated angzarr.AccessPolicy, indexed for lookups.
type Policy struct {
	admins, dispatchers, readers set
	registrars                   set
	domains                      map[string]*domainRule
}

type domainRule struct {
	writers, readers, recorders set
	snapshotOnly, forced        bool
	untyped                     bool
}

type set map[string]struct{}

func (s set) has(id string) bool { _, ok := s[id]; return ok }

// Compile validates p (every identity a workload SPIFFE ID, every domain
// valid and declared once) and indexes it. A nil p allows nothing.
func Compile(p *pb.AccessPolicy) (*Policy, error) {
	var errs []error
	ids := func(where string, list []string) set {
		s := set{}
		for _, v := range list {
			id, err := identity.Parse(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				continue
			}
			s[id.String()] = struct{}{}
		}
		return s
	}
	out := &Policy{
		admins:      ids("admins", p.GetAdmins()),
		dispatchers: ids("dispatchers", p.GetDispatchers()),
		readers:     ids("readers", p.GetReaders()),
		registrars:  ids("schema_registrars", p.GetSchemaRegistrars()),
		domains:     map[string]*domainRule{},
	}
	for _, d := range p.GetDomains() {
		name := d.GetDomain()
		if err := store.ValidateDomain("access.domains.domain", name); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := out.domains[name]; dup {
			errs = append(errs, fmt.Errorf("access: domain %q listed twice", name))
			continue
		}
		w := "access." + name
		out.domains[name] = &domainRule{
			writers:      ids(w+".writers", d.GetWriters()),
			readers:      ids(w+".readers", d.GetReaders()),
			recorders:    ids(w+".recorders", d.GetRecorders()),
			snapshotOnly: d.GetAllowSnapshotOnly(),
			forced:       d.GetAllowForcedSequences(),
			untyped:      d.GetAllowUntypedEvents(),
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Recorders are the identities that may Record events of domain (the
// filter's check; nil when none).
func (p *Policy) Recorders(domain string) []string {
	r := p.domains[domain]
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.recorders))
	for id := range r.recorders {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// denial is a refused call: who, what, and which rule it would need.
type denial struct {
	id, action, rule string
}

func (d *denial) Error() string {
	return fmt.Sprintf("%s may not %s (rule: %s)", d.id, d.action, d.rule)
}

// admin allows an operator.
func (p *Policy) admin(id, action string) *denial {
	if p.admins.has(id) {
		return nil
	}
	return &denial{id, action, "admins"}
}

// write allows a domain's writers (and admins) to Load or Append it.
func (p *Policy) write(id, domain, action string) (*domainRule, *denial) {
	r := p.domains[domain]
	if r != nil && r.writers.has(id) || p.admins.has(id) {
		return r, nil
	}
	return nil, &denial{id, fmt.Sprintf("%s domain %q", action, domain), fmt.Sprintf("domains[%s].writers", domain)}
}

// read allows reading one domain: its readers and writers, global readers,
// dispatchers and admins. An empty domain means every domain.
func (p *Policy) read(id, domain, action string) *denial {
	if p.readers.has(id) || p.admins.has(id) || p.dispatchers.has(id) {
		return nil
	}
	if domain == "" {
		return &denial{id, action + " of every domain", "readers"}
	}
	if r := p.domains[domain]; r != nil && (r.readers.has(id) || r.writers.has(id)) {
		return nil
	}
	return &denial{id, fmt.Sprintf("%s domain %q", action, domain), fmt.Sprintf("domains[%s].readers", domain)}
}
