package authz

import (
	"strings"
	"testing"

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
