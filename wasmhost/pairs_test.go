package wasmhost

import (
	"reflect"
	"testing"
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

func TestEnvoyGRPCClusterName(t *testing.T) {
	// GrpcService{envoy_grpc: {cluster_name: "eventsvc"}}
	b := []byte{0x0a, 0x0a, 0x0a, 0x08, 'e', 'v', 'e', 'n', 't', 's', 'v', 'c'}
	if name, ok := envoyGRPCClusterName(b); !ok || string(name) != "eventsvc" {
		t.Fatalf("cluster = %q %v", name, ok)
	}
	if _, ok := envoyGRPCClusterName([]byte("eventsvc")); ok {
		t.Fatalf("plain name parsed as proto")
	}
}
