//go:build !wasip1

package e2e

import (
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// megabyteEvent is a counter event adding 1, padded to about 1 MB (an
// unknown field the counter ignores), at sequence seq.
func megabyteEvent(seq uint32) *pb.EventPage {
	v, _ := proto.Marshal(wrapperspb.Int64(1))
	v = protowire.AppendTag(v, 15, protowire.BytesType)
	v = protowire.AppendBytes(v, make([]byte, 1000000))
	return &pb.EventPage{Sequence: &pb.EventPage_Num{Num: seq}, Event: &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Int64Value", Value: v}}
}

// TestFiveMegabyteRecords is issue #18's "five ~1 MB Records made one
// customer fail forever", through real parts: the built filter in
// wasmhost (with the listener buffer limit the control plane sets), the
// event service on a real redis-server, the counter logic over gRPC with
// its default 4 MiB receive limit. Four Records of 1 MB are stored; the
// fifth would leave a history no command could carry and is refused with
// FAILED_PRECONDITION, nothing stored; the aggregate keeps taking
// commands (its 4 MB history loads in pages). Appended straight to the
// event service, past the filter, the fifth is refused as well. On an
// aggregate stored before the event service kept its size, which takes
// it, the next command gets FAILED_PRECONDITION with the history's size
// and the advice to snapshot, not a generic RESOURCE_EXHAUSTED; the
// history stays readable.
func TestFiveMegabyteRecords(t *testing.T) {
	s := Start(t, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, BufferLimitBytes: int(controlplane.BufferLimitBytes(0)),
		Config: config.Config{EventTypes: map[string][]string{counter.Domain: {counter.EventType}}}})
	cl := s.Coordinator()
	root := newRoot(t)
	cover := &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}}
	for seq := uint32(0); seq < 4; seq++ {
		if _, err := cl.Record(ctxT(t), &pb.EventBook{Cover: cover, Pages: []*pb.EventPage{megabyteEvent(seq)}}); err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
	}
	_, err := cl.Record(ctxT(t), &pb.EventBook{Cover: cover, Pages: []*pb.EventPage{megabyteEvent(4)}})
	st := wantCode(t, err, codes.FailedPrecondition)
	for _, frag := range []string{"would take its history since the last snapshot", "Nothing was stored", "snapshot_state", "snapshotEvery"} {
		if !strings.Contains(st.Message(), frag) {
			t.Fatalf("fifth record: %q lacks %q", st.Message(), frag)
		}
	}
	if pages := stored(t, s, root); len(pages) != 4 {
		t.Fatalf("%d events stored after the refused record, want 4", len(pages))
	}

	resp, err := cl.Handle(ctxT(t), command(root, 4, 5))
	if err != nil {
		t.Fatalf("a command on the 4 MB history: %v", err)
	}
	if p := resp.GetEvents().GetPages(); len(p) != 1 || p[0].GetNum() != 4 {
		t.Fatalf("answer %v", resp)
	}

	// Past the filter, straight to the event service: refused there too.
	es := pb.NewEventStoreClient(dial(t, s.EventSvc))
	_, err = es.Append(ctxT(t), &pb.AppendRequest{Cover: cover, ExpectedSequence: 5, Pages: []*pb.EventPage{megabyteEvent(5)}})
	if st := wantCode(t, err, codes.FailedPrecondition); !strings.Contains(st.Message(), "snapshot_state") {
		t.Fatalf("append past the filter: %v", st.Message())
	}
	// An aggregate stored before the event service kept its size (the
	// size key removed) takes it: now its history is beyond what a
	// command can carry.
	rc := goredis.NewClient(&goredis.Options{Addr: s.Redis})
	t.Cleanup(func() { rc.Close() })
	keys, err := rc.Keys(ctxT(t), "az:size:{counter:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("size keys %v, %v", keys, err)
	}
	if err := rc.Del(ctxT(t), keys...).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := es.Append(ctxT(t), &pb.AppendRequest{Cover: cover, ExpectedSequence: 5, Pages: []*pb.EventPage{megabyteEvent(5)}}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.Handle(ctxT(t), command(root, 6, 1))
	st = wantCode(t, err, codes.FailedPrecondition)
	for _, frag := range []string{"its history since the last snapshot (5000", "angzarr events counter", "snapshot_state"} {
		if !strings.Contains(st.Message(), frag) {
			t.Fatalf("command on a 5 MB history: %q lacks %q", st.Message(), frag)
		}
	}
	pages := stored(t, s, root)
	if len(pages) != 6 || sum(t, pages) != 10 {
		t.Fatalf("%d events stored, want 6 readable", len(pages))
	}
}
