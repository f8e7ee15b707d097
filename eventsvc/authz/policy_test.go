package authz

import (
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

func TestCompileRefusesBadPolicies(t *testing.T) {
	for name, c := range map[string]struct {
		p    *pb.AccessPolicy
		want string
	}{
		"admin not a SPIFFE ID":      {&pb.AccessPolicy{Admins: []string{"operator"}}, "admins"},
		"writer of another shape":    {&pb.AccessPolicy{Domains: []*pb.DomainAccess{{Domain: "customer", Writers: []string{"spiffe://td/customer"}}}}, "access.customer.writers"},
		"bad domain":                 {&pb.AccessPolicy{Domains: []*pb.DomainAccess{{Domain: "Cust omer"}}}, "domain"},
		"domain twice":               {&pb.AccessPolicy{Domains: []*pb.DomainAccess{{Domain: "customer"}, {Domain: "customer"}}}, "twice"},
		"reader with a query string": {&pb.AccessPolicy{Readers: []string{"spiffe://td/ns/a/sa/b?x"}}, "readers"},
	} {
		if _, err := Compile(c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", name, err, c.want)
		}
	}
	p, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.decide("spiffe://td/ns/a/sa/b", mLoad, &pb.LoadRequest{Cover: &pb.Cover{Domain: "customer"}}); d == nil {
		t.Fatal("an empty policy allowed a load")
	}
	if d := p.decide("spiffe://td/ns/a/sa/b", "/angzarr.Unknown/Call", nil); d == nil || d.rule != "no rule" {
		t.Fatalf("unknown method: %v", d)
	}
}

// TestGatewayRefusesSagaCommands: the gateway executes commands with the
// event service's identity, which filters trust with saga keys; only an
// admin may send a saga's command through it.
func TestGatewayRefusesSagaCommands(t *testing.T) {
	p, err := Compile(&pb.AccessPolicy{
		Admins:  []string{"spiffe://td/ns/ops/sa/operator"},
		Domains: []*pb.DomainAccess{{Domain: "customer", Readers: []string{"spiffe://td/ns/shop/sa/console"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	const method = "/angzarr.CommandGateway/ExecuteStream"
	console := "spiffe://td/ns/shop/sa/console"
	plain := &pb.CommandBook{Cover: &pb.Cover{Domain: "customer"}}
	if d := p.decide(console, method, plain); d != nil {
		t.Fatalf("a reader's plain command: %v", d)
	}
	keyed := &pb.CommandBook{Cover: &pb.Cover{Domain: "customer"}, IdempotencyKey: sagakey.Key("loyalty-earn", "order", make([]byte, 16), 3, 0)}
	origin := &pb.CommandBook{Cover: &pb.Cover{Domain: "customer"}, SagaOrigin: &pb.SagaCommandOrigin{SagaName: "loyalty-earn"}}
	for name, c := range map[string]any{"saga key": keyed, "saga origin": origin, "count request": &pb.ExecuteStreamCountRequest{Command: keyed}} {
		if d := p.decide(console, method, c); d == nil || d.rule != "admins" {
			t.Errorf("%s: %v", name, d)
		}
		if d := p.decide("spiffe://td/ns/ops/sa/operator", method, c); d != nil {
			t.Errorf("%s by the operator: %v", name, d)
		}
	}
}

// TestSchemaRegistryRules: only the schema registrars (the control plane)
// and admins record descriptors; a domain's readers may dry-run a check
// and read its schema, nobody else.
func TestSchemaRegistryRules(t *testing.T) {
	const (
		cp       = "spiffe://td/ns/angzarr-system/sa/angzarr-controlplane"
		admin    = "spiffe://td/ns/ops/sa/operator"
		reader   = "spiffe://td/ns/shop/sa/console"
		stranger = "spiffe://td/ns/shop/sa/mallory"
	)
	p, err := Compile(&pb.AccessPolicy{Admins: []string{admin}, SchemaRegistrars: []string{cp},
		Domains: []*pb.DomainAccess{{Domain: "product", Readers: []string{reader}}}})
	if err != nil {
		t.Fatal(err)
	}
	register := &pb.RegisterSchemaRequest{Domain: "product"}
	dryRun := &pb.RegisterSchemaRequest{Domain: "product", DryRun: true}
	status := &pb.SchemaStatusRequest{Domain: "product"}
	all := &pb.SchemaStatusRequest{}
	for _, c := range []struct {
		id, method string
		msg        any
		allowed    bool
	}{
		{cp, mSchemaRegister, register, true},
		{admin, mSchemaRegister, register, true},
		{reader, mSchemaRegister, register, false},
		{reader, mSchemaRegister, dryRun, true},
		{stranger, mSchemaRegister, dryRun, false},
		{reader, mSchemaStatus, status, true},
		{reader, mSchemaStatus, all, false},
		{cp, mSchemaStatus, all, true},
		{stranger, mSchemaDescs, &pb.SchemaDescriptorsRequest{Domain: "product"}, false},
		{reader, mSchemaDescs, &pb.SchemaDescriptorsRequest{Domain: "product"}, true},
	} {
		if d := p.decide(c.id, c.method, c.msg); (d == nil) != c.allowed {
			t.Errorf("%s %s %v: %v, want allowed=%v", c.id, c.method, c.msg, d, c.allowed)
		}
	}
}

// TestProcessManagerStepRule: only a writer of the trigger's domain (its
// own filter, serving a CASCADE command) may run a process-manager step
// for an event of that domain; a reader of it, or another domain's writer,
// may not.
func TestProcessManagerStepRule(t *testing.T) {
	const cart, order, console = "spiffe://td/ns/shop/sa/cart", "spiffe://td/ns/shop/sa/order", "spiffe://td/ns/shop/sa/console"
	p, err := Compile(&pb.AccessPolicy{Domains: []*pb.DomainAccess{
		{Domain: "cart", Writers: []string{cart}, Readers: []string{console}},
		{Domain: "order", Writers: []string{order}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	step := &pb.ProcessManagerSyncRequest{ProcessManager: "checkout", Trigger: &pb.EventBook{Cover: &pb.Cover{Domain: "cart"}}}
	if d := p.decide(cart, mPMSync, step); d != nil {
		t.Fatalf("the cart's filter: %v", d)
	}
	for _, id := range []string{order, console} {
		if d := p.decide(id, mPMSync, step); d == nil || d.rule != "domains[cart].writers" {
			t.Errorf("%s: %v, want refused by domains[cart].writers", id, d)
		}
	}
}
