//go:build !wasip1

package e2e

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"google.golang.org/grpc/codes"
)

// TestPluginsShareAVM: in Envoy a gateway's per-domain filters (one vm_id
// and code) share one VM per worker, each plugin with its own root context
// and configuration. Here three plugins share the proxy's one VM: the main
// one, "angzarr-b" (its own event service cluster) and "angzarr-tiny" (a
// 16-byte body limit). Commands through the main plugin and angzarr-b run
// at once and succeed (each callout's answer reaches the root that made
// it: one delivered to the other root would be dropped and the command
// would never finish). wasmhost numbers callout tokens per root context as
// Envoy does, so the two roots' calls in flight carry the same token
// numbers: the filter keeps each root's callouts apart. angzarr-tiny
// refuses its command, the others keep their limit.
func TestPluginsShareAVM(t *testing.T) {
	sibling := func(name string, c config.Config) wasmhost.Plugin {
		c.Domains = []string{counter.Domain}
		c.BusinessLogicCluster = "angzarr-logic"
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return wasmhost.Plugin{Name: name, RootID: name, Configuration: raw}
	}
	s := Start(t, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, VMs: 1,
		// angzarr-eventsvc-b is the same event service under another name;
		// its address is known once the stack runs (SetClusters below).
		Clusters: map[string]string{"angzarr-eventsvc-b": "127.0.0.1:1"},
		Siblings: []wasmhost.Plugin{
			sibling("angzarr-b", config.Config{EventServiceCluster: "angzarr-eventsvc-b"}),
			sibling("angzarr-tiny", config.Config{MaxBodyBytes: 16}),
		}})
	if err := s.Host.SetClusters(map[string]string{"angzarr-eventsvc": s.EventSvc, "angzarr-logic": s.Logic,
		"angzarr-eventsvc-b": s.EventSvc}); err != nil {
		t.Fatal(err)
	}
	main, b, tiny := s.Coordinator(), coordinatorAt(t, s.PluginProxy["angzarr-b"]), coordinatorAt(t, s.PluginProxy["angzarr-tiny"])

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 10; i++ {
		for _, c := range []pb.BusinessCoordinatorClient{main, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Handle(ctxT(t), command(newRoot(t), 0, 1)); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, err := tiny.Handle(ctxT(t), command(newRoot(t), 0, 1))
	wantCode(t, err, codes.ResourceExhausted)
	if _, err := main.Handle(ctxT(t), command(newRoot(t), 0, 1)); err != nil {
		t.Fatalf("the main plugin after the tiny one refused: %v", err)
	}
}

func coordinatorAt(t *testing.T, addr string) pb.BusinessCoordinatorClient {
	t.Helper()
	if addr == "" {
		t.Fatal("no listener for the plugin")
	}
	return pb.NewBusinessCoordinatorClient(dial(t, addr))
}
