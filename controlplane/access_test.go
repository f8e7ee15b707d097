package controlplane

import (
	"slices"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/eventsvc/authz"
)

// TestAccessIdentitiesValidated: every identity of the topology is a
// workload SPIFFE ID of its trust domain.
func TestAccessIdentitiesValidated(t *testing.T) {
	raw := string(shopYAML(t))
	for name, c := range map[string]struct{ old, new, want string }{
		"admin of another trust domain": {"admins: [spiffe://cluster.local/", "admins: [spiffe://evil.example/", `not in trust domain "cluster.local"`},
		"admin not a workload ID":       {"admins: [spiffe://cluster.local/ns/angzarr-system/sa/angzarr-operator]", "admins: [operator]", "identity.admins[0]"},
		"projector identity bad":        {"identity: spiffe://cluster.local/ns/shop/sa/order-summary", "identity: spiffe://cluster.local/order-summary", "projectors[order-summary].identity"},
		"bad trust domain":              {"trustDomain: cluster.local", "trustDomain: Not A Domain", "identity.trustDomain"},
		"gateway of another trust domain": {"  proxies: true\n", "  proxies: true\n  gateways: [spiffe://evil.example/ns/edge/sa/gw]\n",
			`identity.gateways[0]: "spiffe://evil.example/ns/edge/sa/gw" is not in trust domain "cluster.local"`},
	} {
		if !strings.Contains(raw, c.old) {
			t.Fatalf("%s: the example topology has no %q", name, c.old)
		}
		_, err := DecodeTopology([]byte(strings.Replace(raw, c.old, c.new, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", name, err, c.want)
		}
	}
}

// TestAccessPolicyFromTopology: the served policy compiles in the event
// service, and annotated workloads' service accounts write their domain.
func TestAccessPolicyFromTopology(t *testing.T) {
	top := loadShop(t)
	merged := mergeWorkloads(top, []Workload{
		{Namespace: "shop", Name: "customer-v2", Domain: "customer", Service: "customer.shop.svc.cluster.local", Port: 50051, ServiceAccount: "customer-sa"},
		{Namespace: "billing", Name: "invoice", Domain: "invoice", Service: "invoice.billing.svc.cluster.local", Port: 9000, ServiceAccount: "default"},
	})
	ap := translateFanout(merged).GetAccess()
	if _, err := authz.Compile(ap); err != nil {
		t.Fatal(err)
	}
	writers := map[string][]string{}
	for _, d := range ap.GetDomains() {
		writers[d.GetDomain()] = d.GetWriters()
	}
	if w := writers["customer"]; !slices.Equal(w, []string{"spiffe://cluster.local/ns/shop/sa/customer", "spiffe://cluster.local/ns/shop/sa/customer-sa"}) {
		t.Errorf("customer writers %v", w)
	}
	if w := writers["invoice"]; !slices.Equal(w, []string{"spiffe://cluster.local/ns/billing/sa/default"}) {
		t.Errorf("invoice writers %v", w)
	}
	// The file topology is not mutated by the merge.
	if d, _ := top.domain("customer"); len(d.Identities) != 0 {
		t.Errorf("file topology mutated: %v", d.Identities)
	}
}

// TestCallerIdentityInFilterConfig: with identity.proxies the filters trust
// the caller identity; recorders are the domain's and the admins.
func TestCallerIdentityInFilterConfig(t *testing.T) {
	top := loadShop(t)
	top.Domains[0].Recorders = []string{"spiffe://cluster.local/ns/ops/sa/importer"}
	c := pluginConfig(top, top.Domains[0].Name, "e", "l", istioNames)
	if !c.CallerIdentity || !slices.Equal(c.Recorders, []string{"spiffe://cluster.local/ns/angzarr-system/sa/angzarr-operator", "spiffe://cluster.local/ns/ops/sa/importer"}) {
		t.Fatalf("caller identity %v, recorders %v", c.CallerIdentity, c.Recorders)
	}
	if !slices.Contains(c.SagaIssuers, "spiffe://cluster.local/ns/angzarr-system/sa/angzarr-eventsvc") || !slices.Contains(c.SagaIssuers, "spiffe://cluster.local/ns/shop/sa/order") {
		t.Fatalf("saga issuers %v", c.SagaIssuers)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	top.Identity.Proxies = false
	if c := pluginConfig(top, top.Domains[0].Name, "e", "l", istioNames); c.CallerIdentity || c.Recorders != nil {
		t.Fatalf("without identity.proxies: %+v", c)
	}
}

// TestEventTypesInFilterConfig: a domain's eventTypes reach its filters
// (sorted, under the domain's name); a domain without them sends none, so
// its filters refuse every Record.
func TestEventTypesInFilterConfig(t *testing.T) {
	top := loadShop(t)
	d := &top.Domains[0]
	if d.Name != "customer" || len(d.EventTypes) == 0 {
		t.Fatalf("the example shop's first domain %q declares no event types", d.Name)
	}
	d.EventTypes = []string{"examples.LoyaltyPointsAdded", "examples.CustomerCreated"}
	c := pluginConfig(top, d.Name, "e", "l", istioNames)
	if got := c.EventTypesOf("customer"); !slices.Equal(got, []string{"examples.CustomerCreated", "examples.LoyaltyPointsAdded"}) || len(c.EventTypes) != 1 {
		t.Fatalf("event types %v", c.EventTypes)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := pluginConfig(top, "order", "e", "l", istioNames); c.EventTypes != nil {
		t.Fatalf("order declares no event types, its filter got %v", c.EventTypes)
	}
}
