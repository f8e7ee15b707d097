package fanout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

// TestReplicasKilledDuringFanout runs three `angzarr eventsvc` replicas
// dispatching one domain to a projector and a saga, on a Redis Cluster of
// three masters, while events are appended through them. Replicas are
// killed with SIGKILL in turn (a lease TTL later the others take their
// partitions over from the checkpoints) and restarted (they take their
// share back). The projector and the saga must get every event, each
// aggregate's in order: nothing early (lost or reordered); a redelivery
// of what was fetched and not committed is skipped, as a real subscriber
// skips it, and counted. The handover (from the kill to the first
// delivery on every partition) is logged: not asserted, it depends on
// the machine.
func TestReplicasKilledDuringFanout(t *testing.T) {
	const ttl = time.Second
	rs := startReplicaSet(t, 3, ttl)
	ctx := testCtx(t, 3*time.Minute)
	wctx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	written := make(chan int, 1)
	roots := newRoots(160)
	go func() { written <- rs.write(wctx, roots, 300, 4) }()

	parts := uint32(16)
	started := time.Now()
	testutil.Eventually(t, "deliveries on every partition", func() bool {
		return rs.proj.deliveredSince(started, parts) && rs.saga.deliveredSince(started, parts)
	})
	testutil.EventuallyWhy(t, func() (bool, string) {
		o := rs.owners(ctx, parts)
		distinct := map[string]bool{}
		for _, x := range o {
			distinct[x] = true
		}
		return len(distinct) == 3 && !distinct[""], fmt.Sprintf("partition owners %v", o)
	})
	for round, victim := range []int{0, 1, 2} {
		rs.procs[victim].Kill() // returns once the process is gone
		killed := time.Now()
		testutil.Eventually(t, "every partition delivered after the kill", func() bool {
			return rs.proj.deliveredSince(killed, parts) && rs.saga.deliveredSince(killed, parts)
		})
		t.Logf("round %d: kill -9 of replica %d: every partition delivered again %v later (lease TTL %v)", round, victim, time.Since(killed).Round(time.Millisecond), ttl)
		rs.procs[victim].Restart()
		restarted := time.Now()
		testutil.Eventually(t, "deliveries after the restart", func() bool {
			return rs.proj.deliveredSince(restarted, parts)
		})
	}
	stopWriting()
	acked := <-written
	want, n := rs.stored(ctx, roots)
	if n < acked {
		t.Fatalf("%d events stored, %d appends acknowledged", n, acked)
	}
	testutil.Eventually(t, "every event at the projector and the saga", func() bool {
		return rs.proj.caughtUp(want) && rs.saga.caughtUp(want)
	})
	for name, c := range map[string]*orderChecker{"projector": rs.proj, "saga": rs.saga} {
		c.mu.Lock()
		if len(c.early) > 0 {
			t.Errorf("%s got events early (lost or reordered): %v", name, c.early[:min(len(c.early), 5)])
		}
		if c.applied != n {
			t.Errorf("%s applied %d events, %d were appended", name, c.applied, n)
		}
		t.Logf("%s: %d events applied once in order, %d redeliveries skipped", name, c.applied, c.dups)
		c.mu.Unlock()
	}
}
