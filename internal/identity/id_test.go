package identity

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	good := []string{
		"spiffe://cluster.local/ns/shop/sa/customer",
		"spiffe://example.org/ns/angzarr-system/sa/angzarr-eventsvc",
		"spiffe://td/ns/a/sa/b.c",
	}
	for _, s := range good {
		id, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		if id.String() != s {
			t.Errorf("Parse(%q) = %q", s, id)
		}
	}
	bad := []string{
		"",
		"customer",
		"https://cluster.local/ns/shop/sa/customer",
		"spiffe://cluster.local",
		"spiffe://cluster.local/ns/shop",
		"spiffe://cluster.local/ns/shop/sa/customer/extra",
		"spiffe://cluster.local/sa/customer/ns/shop",
		"spiffe://cluster.local/ns/Shop/sa/customer",
		"spiffe://cluster.local/ns/shop/sa/-customer",
		"spiffe://cluster.local/ns//sa/customer",
		"spiffe://Cluster.local/ns/shop/sa/customer",
		"spiffe://cluster.local/ns/shop/sa/cust%20omer",
		"spiffe://user@cluster.local/ns/shop/sa/customer",
		"spiffe://cluster.local:443/ns/shop/sa/customer",
		"spiffe://cluster.local/ns/shop/sa/customer?x=1",
	}
	for _, s := range bad {
		if id, err := Parse(s); err == nil || !errors.Is(err, ErrInvalidID) {
			t.Errorf("Parse(%q) = %v, %v; want ErrInvalidID", s, id, err)
		}
	}
}

func TestNew(t *testing.T) {
	id, err := New("cluster.local", "shop", "customer")
	if err != nil || id.String() != "spiffe://cluster.local/ns/shop/sa/customer" {
		t.Fatalf("New = %v, %v", id, err)
	}
	for _, c := range [][3]string{{"", "shop", "sa"}, {"td", "", "sa"}, {"td", "ns", ""}, {"td", "ns/x", "sa"}, {"td", "ns", "sa/x"}, {"td", "NS", "sa"}} {
		if _, err := New(c[0], c[1], c[2]); !errors.Is(err, ErrInvalidID) {
			t.Errorf("New%q: %v, want ErrInvalidID", c, err)
		}
	}
}
