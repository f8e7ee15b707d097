package controlplane

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/angzarr-mesh/angzarr/filter/config"
)

// nameRE is what domain, saga and projector names look like: they become
// parts of Envoy cluster, listener and ECDS resource names.
var nameRE = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// hostRE accepts DNS names (and, separately, IP literals are accepted).
var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// Validate reports every problem of the topology at once, each prefixed
// with the path of the offending field.
func (t *Topology) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if t.APIVersion != TopologyAPIVersion {
		add("apiVersion", "must be %q, got %q", TopologyAPIVersion, t.APIVersion)
	}
	if t.Kind != TopologyKind {
		add("kind", "must be %q, got %q", TopologyKind, t.Kind)
	}
	if err := checkAddress(t.EventService.Address); err != nil {
		add("eventService.address", "%v", err)
	}

	d := t.Defaults
	if d.EventServiceTimeout < 0 {
		add("defaults.eventServiceTimeout", "must not be negative")
	}
	if d.BusinessLogicTimeout < 0 {
		add("defaults.businessLogicTimeout", "must not be negative")
	}
	if d.MaxRetries < 0 {
		add("defaults.maxRetries", "must not be negative, got %d", d.MaxRetries)
	}
	if d.MaxBodyBytes < 0 {
		add("defaults.maxBodyBytes", "must not be negative, got %d", d.MaxBodyBytes)
	}
	if d.SnapshotEvery < 0 {
		add("defaults.snapshotEvery", "must not be negative, got %d", d.SnapshotEvery)
	}

	domains := map[string]bool{}
	type wkey struct{ ns, name string }
	workloads := map[wkey]string{}
	for i, dom := range t.Domains {
		p := fmt.Sprintf("domains[%d]", i)
		switch {
		case dom.Name == "":
			add(p+".name", "required")
		case !nameRE.MatchString(dom.Name):
			add(p+".name", "%q is not a valid name (lower-case letters, digits and '-', starting with a letter, at most 63)", dom.Name)
		case domains[dom.Name]:
			add(p+".name", "duplicate domain %q", dom.Name)
		}
		domains[dom.Name] = true
		if err := checkHost(dom.Service); err != nil {
			add(p+".service", "%v", err)
		}
		if dom.Port < 1 || dom.Port > 65535 {
			add(p+".port", "must be 1-65535, got %d", dom.Port)
		}
		if dom.ServicePort < 0 || dom.ServicePort > 65535 {
			add(p+".servicePort", "must be 1-65535 (or unset: the port), got %d", dom.ServicePort)
		}
		if dom.MaxRetries < 0 {
			add(p+".maxRetries", "must not be negative, got %d", dom.MaxRetries)
		}
		if dom.BusinessLogicTimeout < 0 {
			add(p+".businessLogicTimeout", "must not be negative")
		}
		if dom.SnapshotEvery < 0 {
			add(p+".snapshotEvery", "must not be negative, got %d", dom.SnapshotEvery)
		}
		if dom.Coordinator != "" {
			if err := checkAddress(dom.Coordinator); err != nil {
				add(p+".coordinator", "%v", err)
			}
		}
		if ds := dom.Descriptors; ds != nil && ds.File == "" && !ds.Reflection {
			add(p+".descriptors", "name a file or reflection: true")
		}
		if dom.Name == schemaRegistryDomain {
			add(p+".name", "%q is the event service's schema registry", dom.Name)
		}
		if len(dom.EventTypes) > config.MaxEventTypes {
			add(p+".eventTypes", "%d types, at most %d", len(dom.EventTypes), config.MaxEventTypes)
		}
		eventTypes := map[string]bool{}
		for j, ty := range dom.EventTypes {
			switch {
			case !config.ValidFullName(ty):
				add(fmt.Sprintf("%s.eventTypes[%d]", p, j), "%q is not a full message name (package.Message)", ty)
			case eventTypes[ty]:
				add(fmt.Sprintf("%s.eventTypes[%d]", p, j), "duplicate type %s", ty)
			}
			eventTypes[ty] = true
		}
		upcast := map[string]bool{}
		for j, u := range dom.Upcasters {
			up := fmt.Sprintf("%s.upcasters[%d]", p, j)
			if err := checkAddress(u.Address); err != nil {
				add(up+".address", "%v", err)
			}
			if len(u.Types) == 0 {
				add(up+".types", "required: the stored event types it upcasts")
			}
			for k, ty := range u.Types {
				switch {
				case !protoreflect.FullName(ty).IsValid():
					add(fmt.Sprintf("%s.types[%d]", up, k), "%q is not a full message name (package.Message)", ty)
				case upcast[ty]:
					add(fmt.Sprintf("%s.types[%d]", up, k), "%s is already upcast by another upcaster of the domain", ty)
				}
				upcast[ty] = true
			}
		}
		for j, w := range dom.Workloads {
			wp := fmt.Sprintf("%s.workloads[%d]", p, j)
			if w.Name == "" {
				add(wp+".name", "required")
				continue
			}
			if w.IngressPort < 0 || w.IngressPort > 65535 {
				add(wp+".ingressPort", "%d must be 1-65535 (or unset: the control plane's --ingress-port)", w.IngressPort)
			}
			k := wkey{w.Namespace, w.Name}
			if other, ok := workloads[k]; ok && other != dom.Name {
				add(wp, "workload %s already serves domain %q (a workload serves one domain)", w, other)
			}
			workloads[k] = dom.Name
		}
	}

	subscribers := map[string]bool{}
	checkSubscriber := func(p, name, address, start string) {
		switch {
		case name == "":
			add(p+".name", "required")
		case !nameRE.MatchString(name):
			add(p+".name", "%q is not a valid name (lower-case letters, digits and '-', starting with a letter, at most 63)", name)
		case subscribers[name]:
			add(p+".name", "duplicate subscriber %q (saga, process manager and projector names share one namespace)", name)
		}
		subscribers[name] = true
		if err := checkAddress(address); err != nil {
			add(p+".address", "%v", err)
		}
		if start != "" && start != StartEarliest && start != StartLatest {
			add(p+".startPosition", "must be %q or %q, got %q", StartEarliest, StartLatest, start)
		}
	}
	checkDomains := func(p string, list []string) {
		if len(list) == 0 {
			add(p, "at least one domain required")
		}
		seen := map[string]bool{}
		for j, name := range list {
			switch {
			case seen[name]:
				add(fmt.Sprintf("%s[%d]", p, j), "duplicate domain %q", name)
			case !domains[name]:
				add(fmt.Sprintf("%s[%d]", p, j), "unknown domain %q", name)
			}
			seen[name] = true
		}
	}
	for i, pr := range t.Projectors {
		p := fmt.Sprintf("projectors[%d]", i)
		checkSubscriber(p, pr.Name, pr.Address, pr.StartPosition)
		checkDomains(p+".domains", pr.Domains)
	}
	for i, s := range t.Sagas {
		p := fmt.Sprintf("sagas[%d]", i)
		checkSubscriber(p, s.Name, s.Address, s.StartPosition)
		checkDomains(p+".sources", s.Sources)
		checkDomains(p+".targets", s.Targets)
		for j, a := range s.CompensationFallback {
			if _, ok := CompensationActions[a]; !ok {
				add(fmt.Sprintf("%s.compensationFallback[%d]", p, j), "must be one of record-failure, dead-letter, escalate, stop, got %q", a)
			}
		}
	}
	pmDomains := map[string]bool{}
	for i, pm := range t.ProcessManagers {
		p := fmt.Sprintf("processManagers[%d]", i)
		checkSubscriber(p, pm.Name, pm.Address, pm.StartPosition)
		checkDomains(p+".sources", pm.Sources)
		checkDomains(p+".targets", pm.Targets)
		for j, a := range pm.CompensationFallback {
			if _, ok := CompensationActions[a]; !ok {
				add(fmt.Sprintf("%s.compensationFallback[%d]", p, j), "must be one of record-failure, dead-letter, escalate, stop, got %q", a)
			}
		}
		switch d := pm.domain(); {
		case !nameRE.MatchString(d):
			add(p+".domain", "%q is not a valid name", d)
		case domains[d]:
			add(p+".domain", "%q is a declared domain: a process manager's streams are the framework's", d)
		case pmDomains[d]:
			add(p+".domain", "%q is the domain of another process manager", d)
		case d == t.EventService.FailureDomain || (t.EventService.FailureDomain == "" && d == "saga-failures"):
			add(p+".domain", "%q is the failure domain", d)
		}
		pmDomains[pm.domain()] = true
	}
	if f := t.EventService.FailureDomain; f != "" {
		switch {
		case !nameRE.MatchString(f):
			add("eventService.failureDomain", "%q is not a valid name", f)
		case domains[f]:
			add("eventService.failureDomain", "%q is a declared domain: the failure domain's events are the framework's", f)
		}
	}
	errs = append(errs, t.validateIdentity()...)
	return errors.Join(errs...)
}

// String renders a workload as namespace/name (or name).
func (w WorkloadRef) String() string {
	if w.Namespace == "" {
		return w.Name
	}
	return w.Namespace + "/" + w.Name
}

// checkAddress accepts host:port with a DNS name or IP and a port 1-65535.
func checkAddress(addr string) error {
	if addr == "" {
		return errors.New("required (host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if err := checkHost(host); err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q must be 1-65535", port)
	}
	return nil
}

// checkHost accepts a DNS name or an IP literal.
func checkHost(host string) error {
	switch {
	case host == "":
		return errors.New("required (a host name)")
	case net.ParseIP(host) != nil:
		return nil
	case len(host) > 253 || !hostRE.MatchString(host):
		return fmt.Errorf("%q is not a valid host name", host)
	}
	return nil
}

// splitAddress splits a validated host:port.
func splitAddress(addr string) (string, uint32) {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return host, uint32(n)
}
