package fanout_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// TestPoisonEventIsDeadLetteredAndReplayed: through an in-process event
// service, a projector that fails on one event (in the middle of an
// append of three) gets it MaxAttempts times, then the event is parked with the error while the rest (the same
// aggregate's events before and after it included) flow; `angzarr dlq list` shows it; a
// replay while still failing keeps it; after the projector is fixed a
// replay (`angzarr dlq replay`) delivers it exactly once and empties the
// log.
func TestPoisonEventIsDeadLetteredAndReplayed(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		rec := newRecorder()
		domain := storetest.Domain(t)
		cfg := &pb.FanoutConfig{Subscriptions: []*pb.Subscription{
			projectorSub("picky", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) }), 0, domain),
		}}
		addr := eventsvctest.StartConfig(t, eventsvc.Config{
			Store: b.url(t), FanoutSource: fanout.StaticSource{Config: cfg},
			FanoutMaxAttempts: 3, FanoutBackoff: time.Millisecond, FanoutBackoffMax: 5 * time.Millisecond,
		})
		conn := eventsvctest.Dial(t, addr)
		es, admin := pb.NewEventStoreClient(conn), pb.NewFanoutAdminClient(conn)

		a, c := uuid.New(), uuid.New()
		appendText := func(root uuid.UUID, seq uint32, texts ...string) {
			t.Helper()
			var pages []*pb.EventPage
			for i, text := range texts {
				pages = append(pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: seq + uint32(i)}, Event: storetest.Event(text)})
			}
			if _, err := es.Append(ctx, &pb.AppendRequest{Cover: store.Aggregate{Domain: domain, Root: root}.Cover("c"), ExpectedSequence: seq, Pages: pages}); err != nil {
				t.Fatal(err)
			}
		}
		appendText(a, 0, "a0", "poison", "a2") // one log entry: it fails, is split, only the poison is parked
		appendText(c, 0, "c0")
		appendText(c, 1, "c1")

		var dls []*pb.DeadLetter
		testutil.Eventually(t, "the poison event's dead letter", func() bool {
			resp, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "picky"})
			if err != nil {
				t.Fatal(err)
			}
			dls = resp.GetDeadLetters()
			return len(dls) > 0
		})
		testutil.Eventually(t, "the other events", func() bool { return rec.count() == 4 })
		rec.mu.Lock()
		failures, texts := rec.failures, rec.texts
		rec.mu.Unlock()
		// The entry fails 3 times, is split, and the poison page alone fails
		// 3 more times.
		if failures != 6 || texts["a0"] != 1 || texts["a2"] != 1 || texts["c0"] != 1 || texts["c1"] != 1 || texts["poison"] != 0 {
			t.Fatalf("after %d failures the projector received %v", failures, texts)
		}
		dl := dls[0]
		if len(dls) != 1 || dl.GetAttempts() != 3 || !strings.Contains(dl.GetError(), "cannot digest poison") ||
			text(dl.GetBook().GetPages()[0]) != "poison" || dl.GetBook().GetPages()[0].GetNum() != 1 || dl.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR {
			t.Fatalf("dead letters: %v", dls)
		}

		out, err := exec.CommandContext(ctx, angzarrBin, "dlq", "list", "--addr", addr).CombinedOutput()
		if err != nil || !strings.Contains(string(out), dl.GetId()) || !strings.Contains(string(out), "cannot digest poison") || !strings.Contains(string(out), "picky") {
			t.Fatalf("angzarr dlq list: %v\n%s", err, out)
		}

		// Still broken: the replay fails and the dead letter stays.
		resp, err := admin.ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: "picky"})
		if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetDelivered() || !strings.Contains(resp.GetResults()[0].GetError(), "poison") {
			t.Fatalf("replay while broken: %v, %v", resp, err)
		}

		// Fixed: the replay delivers it once.
		rec.setPoisoned(false)
		out, err = exec.CommandContext(ctx, angzarrBin, "dlq", "replay", "--addr", addr, "--subscriber", "picky", dl.GetId()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), dl.GetId()+"\tdelivered") {
			t.Fatalf("angzarr dlq replay: %v\n%s", err, out)
		}
		if rec.count() != 5 || rec.texts["poison"] != 1 {
			t.Fatalf("after the replay the projector received %v", rec.texts)
		}
		left, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "picky"})
		if err != nil || len(left.GetDeadLetters()) != 0 {
			t.Fatalf("dead letters after the replay: %v, %v", left, err)
		}
		resp, err = admin.ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: "picky", Ids: []string{dl.GetId()}})
		if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetDelivered() {
			t.Fatalf("replaying a replayed dead letter: %v, %v", resp, err)
		}
		if rec.count() != 5 {
			t.Fatalf("a second replay delivered again: %v", rec.texts)
		}
		if _, err := admin.ReplayDeadLetters(context.Background(), &pb.ReplayDeadLettersRequest{Subscriber: "nobody"}); err == nil {
			t.Fatal("replay for an unknown subscriber succeeded")
		}
	})
}

// TestDiscardRemovesOnlyTheNamedDeadLetters: `angzarr dlq skip` (Discard)
// removes the dead letters it names and only them, never delivering them;
// an id that is not parked is reported, and a discard without ids is
// refused.
func TestDiscardRemovesOnlyTheNamedDeadLetters(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		rec := newRecorder()
		domain := storetest.Domain(t)
		cfg := &pb.FanoutConfig{Subscriptions: []*pb.Subscription{
			projectorSub("picky", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) }), 0, domain),
		}}
		addr := eventsvctest.StartConfig(t, eventsvc.Config{
			Store: b.url(t), FanoutSource: fanout.StaticSource{Config: cfg},
			FanoutMaxAttempts: 2, FanoutBackoff: time.Millisecond, FanoutBackoffMax: 5 * time.Millisecond,
		})
		conn := eventsvctest.Dial(t, addr)
		es, admin := pb.NewEventStoreClient(conn), pb.NewFanoutAdminClient(conn)
		for _, root := range []uuid.UUID{uuid.New(), uuid.New()} {
			if _, err := es.Append(ctx, &pb.AppendRequest{Cover: store.Aggregate{Domain: domain, Root: root}.Cover("c"),
				Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: storetest.Event("poison")}}}); err != nil {
				t.Fatal(err)
			}
		}
		var dls []*pb.DeadLetter
		testutil.Eventually(t, "two dead letters", func() bool {
			resp, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "picky"})
			if err != nil {
				t.Fatal(err)
			}
			dls = resp.GetDeadLetters()
			return len(dls) == 2
		})
		skipped, kept := dls[0].GetId(), dls[1].GetId()

		out, err := exec.CommandContext(ctx, angzarrBin, "dlq", "skip", "--addr", addr, "--subscriber", "picky", skipped).CombinedOutput()
		if err != nil || !strings.Contains(string(out), skipped+"\tdiscarded") {
			t.Fatalf("angzarr dlq skip: %v\n%s", err, out)
		}
		left, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "picky"})
		if err != nil || len(left.GetDeadLetters()) != 1 || left.GetDeadLetters()[0].GetId() != kept {
			t.Fatalf("dead letters after skipping %s: %v, %v", skipped, left, err)
		}
		// Skipped again: nothing is parked under that id any more.
		if out, err := exec.CommandContext(ctx, angzarrBin, "dlq", "skip", "--addr", addr, "--subscriber", "picky", skipped).CombinedOutput(); err == nil ||
			!strings.Contains(string(out), "not parked") {
			t.Errorf("skipping a skipped dead letter: %v\n%s", err, out)
		}
		if _, err := admin.DiscardDeadLetters(ctx, &pb.DiscardDeadLettersRequest{Subscriber: "picky"}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("a discard without ids: %v, want InvalidArgument", err)
		}
		// The skipped event was never delivered: fixed, a replay of the
		// rest delivers only the kept one.
		rec.setPoisoned(false)
		resp, err := admin.ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: "picky"})
		if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetId() != kept || !resp.GetResults()[0].GetDelivered() {
			t.Fatalf("replay after the skip: %v, %v", resp, err)
		}
		if rec.count() != 1 {
			t.Errorf("the projector received %v, want the kept event only", rec.texts)
		}
	})
}
