package filter

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// limitedConfig is typedConfig with a 2000-byte max_body_bytes.
const limitedConfig = `{"domains":["counter"],"max_body_bytes":2000,"event_types":{"counter":["` + counterEventType + `"]}}`

// paddedEvent is a counter event adding delta, padded to about size bytes
// (an unknown field the counter ignores).
func paddedEvent(delta int64, size int) *pb.EventPage {
	v, _ := proto.Marshal(wrapperspb.Int64(delta))
	v = protowire.AppendTag(v, 15, protowire.BytesType)
	v = protowire.AppendBytes(v, make([]byte, size))
	return &pb.EventPage{Event: &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Int64Value", Value: v}}
}

// seed stores n padded events (delta 1 each) on counter aggregate r.
func (hs *harness) seed(r byte, n, size int) {
	hs.t.Helper()
	cover := &pb.Cover{Domain: counter.Domain, Root: root(r)}
	for i := 0; i < n; i++ {
		next := uint32(len(hs.stored(r)))
		if _, st := hs.store.append(&pb.AppendRequest{Cover: cover, ExpectedSequence: next, Pages: []*pb.EventPage{paddedEvent(1, size)}}); st != nil {
			hs.t.Fatal(st)
		}
	}
}

// record sends a Record of pages at sequence seq on counter aggregate r.
func (hs *harness) record(r byte, seq uint32, snapshot *anypb.Any, pages ...*pb.EventPage) result {
	for i, p := range pages {
		p.Sequence = &pb.EventPage_Num{Num: seq + uint32(i)}
	}
	book := &pb.EventBook{Cover: &pb.Cover{Domain: counter.Domain, Root: root(r)}, Pages: pages, SnapshotState: snapshot}
	return hs.send(PathRecord, frame(hs.t, book))
}

// wantTooLarge checks the answer for a history beyond what a command can
// carry: FAILED_PRECONDITION naming the aggregate, what is too large, that
// nothing was stored and how to snapshot.
func wantTooLarge(t *testing.T, r result, what string) {
	t.Helper()
	wantCode(t, r, FailedPrecondition, what)
	for _, frag := range []string{"aggregate counter/00000000-0000-4000-0000-", "Nothing was stored", "angzarr events counter", "snapshot_state", "snapshotEvery"} {
		if !strings.Contains(r.message, frag) {
			t.Fatalf("message %q lacks %q", r.message, frag)
		}
	}
}

// TestLongHistory (issue #20, #18): histories the event service pages, and
// histories beyond what a command can carry to the logic, natively and
// through the built module.
func TestLongHistory(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		run  func(t *testing.T, hs *harness)
	}{
		{"a paged history reaches the logic whole", typedConfig, func(t *testing.T, hs *harness) {
			hs.store.pageBytes = 300
			hs.seed(1, 10, 100)
			r := hs.handle(cmd(1, 10, 5))
			wantCode(t, r, OK, "")
			if hs.store.loads < 4 {
				t.Fatalf("%d loads of 10 events of 100 bytes in pages of 300 bytes", hs.store.loads)
			}
			seen := hs.seenByLogic[0].GetEvents().GetPages()
			if len(seen) != 10 {
				t.Fatalf("logic saw %d events", len(seen))
			}
			for i, p := range seen {
				if p.GetNum() != uint32(i) {
					t.Fatalf("event %d has sequence %d", i, p.GetNum())
				}
			}
			if hs.seenByLogic[0].GetEvents().GetCover().GetDomain() != counter.Domain {
				t.Fatalf("cover %v", hs.seenByLogic[0].GetEvents().GetCover())
			}
			if len(hs.stored(1)) != 11 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		{"an idempotent repeat on a paged history loads one page", typedConfig, func(t *testing.T, hs *harness) {
			hs.store.pageBytes = 300
			hs.seed(1, 10, 100)
			c := cmd(1, 10, 5)
			c.IdempotencyKey = "once"
			wantCode(t, hs.handle(c), OK, "")
			loads := hs.store.loads
			r := hs.handle(c)
			wantCode(t, r, OK, "")
			if hs.store.loads != loads+1 || len(hs.stored(1)) != 11 || len(r.resp.GetEvents().GetPages()) != 1 {
				t.Fatalf("repeat: %d loads, %d stored, answer %v", hs.store.loads-loads, len(hs.stored(1)), r.resp)
			}
		}},
		{"a history beyond max_body_bytes: FAILED_PRECONDITION, logic not called", limitedConfig, func(t *testing.T, hs *harness) {
			hs.store.pageBytes = 500
			hs.seed(1, 30, 100)
			r := hs.handle(cmd(1, 30, 5))
			wantTooLarge(t, r, "its history since the last snapshot is more than")
			if !r.local || hs.logicCalls != 0 || len(hs.stored(1)) != 30 {
				t.Fatalf("logic called %d times, %d stored", hs.logicCalls, len(hs.stored(1)))
			}
			// One page (no paging): the history and the command are
			// measured together.
			hs.store.pageBytes = 0
			wantTooLarge(t, hs.handle(cmd(1, 30, 5)), "and the command make a request of")
			if hs.logicCalls != 0 || len(hs.stored(1)) != 30 {
				t.Fatalf("logic called %d times, %d stored", hs.logicCalls, len(hs.stored(1)))
			}
		}},
		{"a decision that would take the history beyond the limit is refused, nothing stored", limitedConfig, func(t *testing.T, hs *harness) {
			// max_body_bytes 2000 keeps 1000 bytes for the history.
			hs.seed(1, 8, 100)
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				return &pb.EventBook{Pages: []*pb.EventPage{paddedEvent(1, 150)}}, nil
			}
			r := hs.handle(cmd(1, 8, 1))
			wantTooLarge(t, r, "would take its history since the last snapshot from")
			if len(hs.stored(1)) != 8 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
			// With a snapshot the history starts afresh: stored.
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				st, _ := anypb.New(wrapperspb.Int64(9))
				return &pb.EventBook{Pages: []*pb.EventPage{paddedEvent(1, 150)}, SnapshotState: st}, nil
			}
			wantCode(t, hs.handle(cmd(1, 8, 1)), OK, "")
			if len(hs.stored(1)) != 9 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
			// The next command carries only the snapshot.
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				b, err := counter.Decide(cc, 0)
				if err != nil {
					return nil, statusf(Internal, "%v", err)
				}
				return b, nil
			}
			wantCode(t, hs.handle(cmd(1, 9, 1)), OK, "")
			if ev := hs.seenByLogic[len(hs.seenByLogic)-1].GetEvents(); ev.GetSnapshot() == nil || len(ev.GetPages()) != 0 {
				t.Fatalf("logic saw %v", ev)
			}
		}},
		{"a Record that would take the history beyond the limit is refused, nothing stored", limitedConfig, func(t *testing.T, hs *harness) {
			hs.seed(1, 8, 100)
			r := hs.record(1, 8, nil, paddedEvent(1, 150))
			wantTooLarge(t, r, "would take its history since the last snapshot from")
			if !r.local || len(hs.stored(1)) != 8 || hs.logicCalls != 0 {
				t.Fatalf("stored %d, logic called %d times", len(hs.stored(1)), hs.logicCalls)
			}
			st, _ := anypb.New(wrapperspb.Int64(9))
			wantCode(t, hs.record(1, 8, st, paddedEvent(1, 150)), OK, "")
			if len(hs.stored(1)) != 9 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		{"a Record with a snapshot rescues a history no command can carry", limitedConfig, func(t *testing.T, hs *harness) {
			hs.store.pageBytes = 500
			hs.seed(1, 30, 100)
			wantTooLarge(t, hs.handle(cmd(1, 30, 1)), "is more than")
			wantTooLarge(t, hs.record(1, 30, nil, paddedEvent(1, 10)), "is more than")
			st, _ := anypb.New(wrapperspb.Int64(31))
			wantCode(t, hs.record(1, 30, st, paddedEvent(1, 10)), OK, "")
			wantCode(t, hs.handle(cmd(1, 31, 1)), OK, "")
			if len(hs.stored(1)) != 32 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		{"the event service's refusal of a history beyond its bound passes as FAILED_PRECONDITION", typedConfig, func(t *testing.T, hs *harness) {
			// What the event service answers an append beyond --max-history-bytes.
			hs.store.refuseHistory = true
			r := hs.handle(cmd(1, 0, 1))
			wantCode(t, r, FailedPrecondition, "event service refused the append: aggregate counter/")
			if len(hs.stored(1)) != 0 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
		}},
		// Issue #18: five ~1 MB Records made one customer fail forever.
		{"five 1 MB Records: the fifth is refused and the aggregate keeps working", typedConfig, func(t *testing.T, hs *harness) {
			hs.store.pageBytes = 1 << 20
			for i := uint32(0); i < 4; i++ {
				wantCode(t, hs.record(1, i, nil, paddedEvent(1, 1000000)), OK, "")
			}
			r := hs.record(1, 4, nil, paddedEvent(1, 1000000))
			wantTooLarge(t, r, "would take its history since the last snapshot from")
			if len(hs.stored(1)) != 4 {
				t.Fatalf("stored %d", len(hs.stored(1)))
			}
			r = hs.handle(cmd(1, 4, 5))
			wantCode(t, r, OK, "")
			if v, err := counter.State(&pb.EventBook{Pages: hs.stored(1)}); err != nil || v != 9 {
				t.Fatalf("state %d, %v", v, err)
			}
		}},
	}
	forModes(t, func(t *testing.T, mode guestMode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				hs := newHarnessIn(t, mode, tt.cfg)
				tt.run(t, hs)
				hs.checkNoLeaks(t)
			})
		}
	})
}
