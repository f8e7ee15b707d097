package fanout_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// TestReplayCommandRebuildsProjector runs `angzarr replay --projector`
// against an in-process event service: the projector receives its whole
// history again and the command ends with a full progress bar.
func TestReplayCommandRebuildsProjector(t *testing.T) {
	b := backends()[1] // redis: several partitions
	ctx := testCtx(t, time.Minute)
	rec := newRecorder()
	domain := storetest.Domain(t)
	cfg := &pb.FanoutConfig{Subscriptions: []*pb.Subscription{
		projectorSub("summary", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) }), 0, domain),
	}}
	addr := eventsvctest.StartConfig(t, eventsvc.Config{Store: b.url(t), FanoutSource: fanout.StaticSource{Config: cfg}})
	es := pb.NewEventStoreClient(eventsvctest.Dial(t, addr))
	const aggs, each = 10, 3
	for i := 0; i < aggs; i++ {
		root := uuid.New()
		for s := uint32(0); s < each; s++ {
			if _, err := es.Append(ctx, &pb.AppendRequest{Cover: store.Aggregate{Domain: domain, Root: root}.Cover(""), ExpectedSequence: s, Pages: storetest.Pages(s, 1, "e")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.Eventually(t, "the first delivery", func() bool { return rec.count() == aggs*each })

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, angzarrBin, "replay", "--projector", "summary", "--addr", addr, "--interval", "20ms")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("angzarr replay: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "100%") || !strings.Contains(stdout.String(), "projector summary rebuilt") {
		t.Fatalf("angzarr replay printed\n%s\n%s", stdout.String(), stderr.String())
	}
	// The command returns once every partition is committed: every event
	// was delivered a second time by then.
	if got := rec.count(); got != 2*aggs*each {
		t.Fatalf("after the rebuild the projector received %d events, want %d", got, 2*aggs*each)
	}
	rec.mu.Lock()
	for root, seqs := range rec.seqs {
		if len(seqs) != 2*each || seqs[each] != 0 {
			t.Errorf("%s: received %v", root, seqs)
		}
	}
	rec.mu.Unlock()

	out, err := exec.CommandContext(ctx, angzarrBin, "replay", "--projector", "nobody", "--addr", addr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "NotFound") {
		t.Fatalf("replay of an unknown projector: %v\n%s", err, out)
	}
}
