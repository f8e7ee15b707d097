package wasmhost

import (
	"cmp"
	"reflect"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
)

func TestPairsRoundTrip(t *testing.T) {
	in := [][2]string{{":path", "/x"}, {"a", ""}, {"", "b"}, {"k", "v\x00w"}}
	if got := decodePairs(encodePairs(in)); !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip = %q", got)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 0, 0, 0}, {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 'a', 'b'}} {
		if got := decodePairs(bad); got != nil {
			t.Errorf("decodePairs(%q) = %q, want nil", bad, got)
		}
	}
}

// FuzzDecodePairs: pairs come from guest memory, i.e. untrusted bytes.
func FuzzDecodePairs(f *testing.F) {
	f.Add(encodePairs([][2]string{{"a", "b"}, {"content-type", "application/grpc"}}))
	f.Add([]byte{2, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pairs := decodePairs(b)
		if pairs == nil {
			return
		}
		if again := decodePairs(encodePairs(pairs)); !reflect.DeepEqual(again, pairs) {
			t.Fatalf("re-encode changed pairs: %q vs %q", again, pairs)
		}
	})
}

func TestPercentEncode(t *testing.T) {
	if got := percentEncode("a b%c\né"); got != "a b%25c%0A%C3%A9" {
		t.Fatalf("percentEncode = %q", got)
	}
}

func TestEnvoyGRPC(t *testing.T) {
	for _, tc := range []struct{ cluster, authority string }{
		{"eventsvc", ""},
		{"outbound|1313||angzarr-eventsvc.angzarr.svc.cluster.local", "angzarr-eventsvc.angzarr.svc.cluster.local"},
	} {
		b, err := proto.Marshal(&core.GrpcService{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: tc.cluster, Authority: tc.authority},
		}})
		if err != nil {
			t.Fatal(err)
		}
		name, auth, ok := envoyGRPC(b)
		if !ok || string(name) != tc.cluster || string(auth) != tc.authority {
			t.Fatalf("envoyGRPC = %q %q %v, want %q %q", name, auth, ok, tc.cluster, tc.authority)
		}
		if got := calloutAuthority(string(name), string(auth)); got != cmp.Or(tc.authority, tc.cluster) {
			t.Fatalf("authority = %q", got)
		}
	}
	if _, _, ok := envoyGRPC([]byte("eventsvc")); ok {
		t.Fatalf("plain name parsed as proto")
	}
}

func TestValidAuthority(t *testing.T) {
	for s, want := range map[string]bool{
		"angzarr-eventsvc":                            true,
		"angzarr-eventsvc.angzarr.svc.cluster.local":  true,
		"127.0.0.1:1313":                              true,
		"[::1]:1313":                                  true,
		"outbound|1313||angzarr-eventsvc.angzarr.svc": false,
		"inbound|50051||":                             false,
		"a b":                                         false,
		"":                                            false,
	} {
		if got := validAuthority(s); got != want {
			t.Errorf("validAuthority(%q) = %v, want %v", s, got, want)
		}
	}
}
