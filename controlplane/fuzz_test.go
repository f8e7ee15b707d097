package controlplane

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeTopology: any input either fails to decode or yields a
// topology whose translation verifies (what decodes can be served).
// Seeds: testdata/topologies/*.yaml and the example shop.
func FuzzDecodeTopology(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/topologies/*.yaml")
	seeds = append(seeds, "../examples/topology.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := DecodeTopology(data)
		if err != nil {
			return
		}
		tr, err := Translate(top, Options{WasmFile: testWasmFile})
		if err != nil {
			t.Fatalf("a decoded topology does not translate: %v", err)
		}
		if err := VerifyTranslation(tr); err != nil {
			t.Fatalf("a decoded topology does not verify: %v", err)
		}
	})
}

// FuzzDecodeFilter: ECDS bytes from the wire never panic the proxy side.
func FuzzDecodeFilter(f *testing.F) {
	tr, err := Translate(loadShop(f), Options{WasmFile: testWasmFile})
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range tr.Classes() {
		for _, r := range tr.Snapshots[c].Resources[types.ExtensionConfig].Items {
			b, err := proto.Marshal(r.Resource)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tec := &core.TypedExtensionConfig{}
		if proto.Unmarshal(data, tec) != nil {
			return
		}
		if fl, err := xdsclient.DecodeFilter(tec); err == nil && fl.Config == nil {
			t.Fatal("decoded without a configuration")
		}
	})
}
