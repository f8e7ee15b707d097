package identity

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestParseXFCC(t *testing.T) {
	got, err := ParseXFCC(`By=spiffe://cluster.local/ns/angzarr-system/sa/angzarr-eventsvc;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="CN=x,O=a\"b";URI=spiffe://cluster.local/ns/shop/sa/customer;DNS=a.example;DNS=b.example,uri=spiffe://td/ns/a/sa/b`)
	if err != nil {
		t.Fatal(err)
	}
	want := []XFCCElement{{
		By:      []string{"spiffe://cluster.local/ns/angzarr-system/sa/angzarr-eventsvc"},
		Hash:    "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688",
		Subject: `CN=x,O=a"b`,
		URI:     []string{"spiffe://cluster.local/ns/shop/sa/customer"},
		DNS:     []string{"a.example", "b.example"},
	}, {URI: []string{"spiffe://td/ns/a/sa/b"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{
		"", ",", "URI", "URI=a,", "=a", "URI=a;", "URI=\"a", "URI=\"a\"b", "URI=a=b", "Foo=bar",
		"URI=a b", "URI=\"a\x01\"", "URI=a\"", "URI=\"a\\", strings.Repeat("URI=a,", maxXFCCElements) + "URI=a",
	} {
		if els, err := ParseXFCC(bad); err == nil {
			t.Errorf("ParseXFCC(%q) = %+v, want an error", bad, els)
		}
	}
}

func TestResolverXFCC(t *testing.T) {
	ctx := func(vals ...string) context.Context {
		md := metadata.MD{}
		for _, v := range vals {
			md.Append(XFCCHeader, v)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	r := Resolver{TrustXFCC: true}
	// The last element is the one the nearest proxy (our sidecar) added.
	id, err := r.Caller(ctx(`URI=spiffe://td/ns/evil/sa/forged,By=spiffe://td/ns/x/sa/y;URI=spiffe://td/ns/shop/sa/customer`))
	if err != nil || id.String() != "spiffe://td/ns/shop/sa/customer" {
		t.Fatalf("Caller = %v, %v", id, err)
	}
	for name, c := range map[string]context.Context{
		"no header":      ctx(),
		"two headers":    ctx("URI=spiffe://td/ns/a/sa/b", "URI=spiffe://td/ns/a/sa/b"),
		"no URI":         ctx("Hash=abc"),
		"two URIs":       ctx("URI=spiffe://td/ns/a/sa/b;URI=spiffe://td/ns/a/sa/c"),
		"not a workload": ctx("URI=spiffe://td/other"),
		"malformed":      ctx("URI=\"spiffe://td/ns/a/sa/b"),
		"no metadata":    context.Background(),
	} {
		if id, err := r.Caller(c); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: Caller = %v, %v; want ErrUnauthenticated", name, id, err)
		}
	}
	// Without TrustXFCC the header is ignored: no TLS peer, no identity.
	if id, err := (Resolver{}).Caller(ctx("URI=spiffe://td/ns/shop/sa/customer")); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("untrusted header accepted: %v, %v", id, err)
	}
}

func FuzzParseXFCC(f *testing.F) {
	for _, s := range []string{
		`By=spiffe://cluster.local/ns/a/sa/b;Hash=abc;Subject="CN=x,O=y";URI=spiffe://cluster.local/ns/shop/sa/customer`,
		`URI=a,URI=b`, `Subject="a\"b";DNS=x`, `"`, `=`, `;`, `,`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		els, err := ParseXFCC(h)
		if err != nil {
			if els != nil {
				t.Fatalf("elements with an error: %+v", els)
			}
			return
		}
		if len(els) == 0 || len(els) > maxXFCCElements {
			t.Fatalf("%d elements", len(els))
		}
		// A parsed header survives re-encoding.
		again, err := ParseXFCC(encodeXFCC(els))
		if err != nil || !reflect.DeepEqual(normalize(again), normalize(els)) {
			t.Fatalf("re-encoded %q: %+v, %v; want %+v", encodeXFCC(els), again, err, els)
		}
	})
}

func normalize(els []XFCCElement) []XFCCElement {
	out := make([]XFCCElement, len(els))
	for i, e := range els {
		out[i] = XFCCElement{Hash: e.Hash, Cert: e.Cert, Chain: e.Chain, Subject: e.Subject,
			By: append([]string{}, e.By...), URI: append([]string{}, e.URI...), DNS: append([]string{}, e.DNS...)}
	}
	return out
}

// encodeXFCC quotes every value; a test helper for the round trip.
func encodeXFCC(els []XFCCElement) string {
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	var parts []string
	for _, e := range els {
		var kv []string
		add := func(k string, vs ...string) {
			for _, v := range vs {
				kv = append(kv, k+"="+q(v))
			}
		}
		add("By", e.By...)
		if e.Hash != "" {
			add("Hash", e.Hash)
		}
		if e.Cert != "" {
			add("Cert", e.Cert)
		}
		if e.Chain != "" {
			add("Chain", e.Chain)
		}
		if e.Subject != "" {
			add("Subject", e.Subject)
		}
		add("URI", e.URI...)
		add("DNS", e.DNS...)
		if len(kv) == 0 {
			kv = append(kv, `Hash=""`)
		}
		parts = append(parts, strings.Join(kv, ";"))
	}
	return strings.Join(parts, ",")
}
