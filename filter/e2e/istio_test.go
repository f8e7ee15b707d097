//go:build !wasip1

package e2e

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"google.golang.org/grpc/codes"
)

// Istio's names of the clusters the filter calls (not valid :authority
// values: Envoy's async gRPC client would send them as such), and the
// loopback cluster the control plane names for the logic's retries.
const (
	istioEventService = "outbound|1313||angzarr-eventsvc.angzarr.svc.cluster.local"
	istioInboundLogic = "inbound|50051||"
	istioLogic        = "angzarr-logic-loopback-50051"
)

// TestIstioClusterNames runs commands under an Istio sidecar's clusters:
// the event service's outbound cluster, whose name is no valid :authority
// (the filter's callouts carry the authority of its configuration, or
// wasmhost, like Envoy, would send the name and every Load and Append
// fails UNAVAILABLE), and the logic's inbound cluster, which is
// ORIGINAL_DST in Istio's default passthrough mode and has no host for a
// callout: a write conflict's retry, which calls the logic by callout,
// fails there and works through the loopback cluster.
func TestIstioClusterNames(t *testing.T) {
	for _, tc := range []struct {
		name, logic string
		want        codes.Code
	}{
		{"retry through the inbound cluster", istioInboundLogic, codes.Unavailable},
		{"retry through the loopback cluster", istioLogic, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The logic's first call for an aggregate stores an event
			// behind the filter's back: the filter's append conflicts and
			// the auto_resequence command is retried.
			var s *Stack
			var conflicted atomic.Bool
			logic := &counter.Service{Seen: func(ctx context.Context, cc *pb.ContextualCommand) {
				if conflicted.Swap(true) {
					return
				}
				_, err := pb.NewEventStoreClient(s.storeConn).Append(ctx, &pb.AppendRequest{
					Cover: cc.GetCommand().GetCover(), Pages: []*pb.EventPage{counter.Event(100)}})
				if err != nil {
					t.Errorf("append behind the filter: %v", err)
				}
			}}
			s = Start(t, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, Logic: logic,
				Clusters: map[string]string{istioInboundLogic: wasmhost.OriginalDst},
				Config: config.Config{
					EventServiceCluster:  istioEventService,
					BusinessLogicCluster: tc.logic,
					Authorities: map[string]string{
						istioEventService: "angzarr-eventsvc.angzarr.svc.cluster.local",
						tc.logic:          "counter.default.svc.cluster.local",
					},
				}})
			root := newRoot(t)
			cmd := command(root, 0, 5)
			cmd.AutoResequence = true
			_, err := s.Coordinator().Handle(ctxT(t), cmd)
			if tc.want != codes.OK {
				wantCode(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pages := stored(t, s, root); len(pages) != 2 || sum(t, pages) != 105 {
				t.Fatalf("stored %v", pages)
			}
		})
	}
}
