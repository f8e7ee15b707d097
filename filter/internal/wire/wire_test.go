package wire

import (
	"bytes"
	"errors"
	"testing"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func marshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleCommand(t testing.TB) *pb.CommandBook {
	root := make([]byte, 16)
	root[3] = 9
	return &pb.CommandBook{
		Cover: &pb.Cover{Domain: "order", Root: &pb.UUID{Value: root}, CorrelationId: "c-1"},
		Pages: []*pb.CommandPage{
			{Sequence: 7, Command: anyOf(t, wrapperspb.Int64(5))},
			{Sequence: 0, Command: anyOf(t, wrapperspb.String("x"))},
		},
		SagaOrigin:     &pb.SagaCommandOrigin{SagaName: "s", TriggeringAggregate: &pb.Cover{Domain: "cart", Root: &pb.UUID{Value: root}}, TriggeringEventSequence: 300},
		AutoResequence: true,
		IdempotencyKey: "k",
	}
}

func TestCommandBookRoundTrip(t *testing.T) {
	in := sampleCommand(t)
	cb, err := DecodeCommandBook(marshal(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if cb.Cover.Domain != "order" || len(cb.Cover.Root) != 16 || len(cb.Pages) != 2 || cb.Pages[0].Sequence != 7 ||
		!cb.AutoResequence || cb.IdempotencyKey != "k" || cb.SagaOrigin.SagaName != "s" || cb.SagaOrigin.TriggeringEventSequence != 300 ||
		cb.SagaOrigin.TriggeringAggregate.Domain != "cart" {
		t.Fatalf("decoded %+v", cb)
	}
	out := &pb.CommandBook{}
	if err := proto.Unmarshal(cb.Append(nil), out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("round trip: %v\n%v\n%v", err, in, out)
	}
	scb, err := DecodeSyncCommandBook(marshal(t, &pb.SyncCommandBook{Command: in, SyncMode: pb.SyncMode_SYNC_MODE_CASCADE}))
	if err != nil || scb.SyncMode != 2 || scb.Command.IdempotencyKey != "k" || SyncModeName(scb.SyncMode) != "SYNC_MODE_CASCADE" {
		t.Fatalf("sync: %v %+v", err, scb)
	}
}

func TestUnknownFieldsPreserved(t *testing.T) {
	in := sampleCommand(t)
	in.ProtoReflect().SetUnknown([]byte{0xf8, 0x01, 0x05}) // field 31 varint 5
	cb, err := DecodeCommandBook(marshal(t, in))
	if err != nil {
		t.Fatal(err)
	}
	out := &pb.CommandBook{}
	if err := proto.Unmarshal(cb.Append(nil), out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("unknown fields lost: %v", err)
	}
}

func TestEventBookRoundTrip(t *testing.T) {
	root := make([]byte, 16)
	in := &pb.EventBook{
		Cover:    &pb.Cover{Domain: "order", Root: &pb.UUID{Value: root}},
		Snapshot: &pb.Snapshot{Sequence: 4, State: anyOf(t, wrapperspb.Int64(1))},
		Pages: []*pb.EventPage{
			{Sequence: &pb.EventPage_Num{Num: 0}, CreatedAt: timestamppb.Now(), Event: anyOf(t, wrapperspb.Int64(1))},
			{Sequence: &pb.EventPage_Force{Force: true}, Event: anyOf(t, wrapperspb.Int64(2))},
			{Event: anyOf(t, wrapperspb.Int64(3))},
		},
		SnapshotState: anyOf(t, wrapperspb.Int64(9)),
		Position:      &pb.LogPosition{Partition: 1, Offset: 2},
	}
	eb, err := DecodeEventBook(marshal(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if !eb.Pages[0].HasNum || eb.Pages[0].Num != 0 || !eb.Pages[1].Force || eb.Pages[2].HasNum || eb.Pages[2].Force {
		t.Fatalf("pages %+v %+v %+v", eb.Pages[0], eb.Pages[1], eb.Pages[2])
	}
	out := &pb.EventBook{}
	if err := proto.Unmarshal(eb.Append(nil), out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("round trip: %v\n%v\n%v", err, in, out)
	}
}

func TestStoreMessages(t *testing.T) {
	cover := &Cover{Domain: "order", Root: make([]byte, 16), CorrelationID: "c"}
	lr := &pb.LoadRequest{}
	if err := proto.Unmarshal((&LoadRequest{Cover: cover.Key(), IdempotencyKey: "k"}).Marshal(), lr); err != nil ||
		lr.GetCover().GetDomain() != "order" || lr.GetCover().GetCorrelationId() != "" || lr.GetIdempotencyKey() != "k" {
		t.Fatalf("load request %v %v", err, lr)
	}
	book := &pb.EventBook{Cover: &pb.Cover{Domain: "order"}, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 3}}}}
	resp := &pb.LoadResponse{Book: book, NextSequence: 4, Prior: &pb.AppendResponse{Book: book, NextSequence: 4, Duplicate: true}, MoreFrom: 2}
	got, err := DecodeLoadResponse(marshal(t, resp))
	if err != nil || got.NextSequence != 4 || got.Prior == nil || !got.Prior.Duplicate || got.Prior.NextSequence != 4 || got.MoreFrom != 2 {
		t.Fatalf("load response %v %+v", err, got)
	}
	gb := &pb.EventBook{}
	if err := proto.Unmarshal(got.Book, gb); err != nil || !proto.Equal(gb, book) {
		t.Fatalf("raw book %v", err)
	}
	ar := &pb.AppendRequest{}
	req := &AppendRequest{Cover: cover, ExpectedSequence: 4, Pages: []*EventPage{{HasNum: true, Num: 4, Event: []byte{}}}, SnapshotState: []byte{}, IdempotencyKey: "k"}
	if err := proto.Unmarshal(req.Marshal(), ar); err != nil || ar.GetExpectedSequence() != 4 || ar.GetPages()[0].GetNum() != 4 ||
		ar.GetPages()[0].GetEvent() == nil || ar.GetSnapshotState() == nil || ar.GetCover().GetCorrelationId() != "c" {
		t.Fatalf("append request %v %v", err, ar)
	}
	sc := &pb.SequenceConflict{}
	if err := proto.Unmarshal((&SequenceConflict{Cover: cover.Key(), ExpectedSequence: 1, NextSequence: 2}).Marshal(), sc); err != nil ||
		sc.GetNextSequence() != 2 || sc.GetExpectedSequence() != 1 {
		t.Fatalf("conflict %v %v", err, sc)
	}
	st := &spb.Status{}
	if err := proto.Unmarshal(RPCStatus(10, "m", Any("type.googleapis.com/angzarr.SequenceConflict", marshal(t, sc))), st); err != nil ||
		st.Code != 10 || st.Message != "m" || len(st.Details) != 1 {
		t.Fatalf("status %v %v", err, st)
	}
	back := &pb.SequenceConflict{}
	if err := st.Details[0].UnmarshalTo(back); err != nil || !proto.Equal(back, sc) {
		t.Fatalf("detail %v", err)
	}
}

func TestComposedMessages(t *testing.T) {
	in := sampleCommand(t)
	cb, _ := DecodeCommandBook(marshal(t, in))
	book := &pb.EventBook{Cover: &pb.Cover{Domain: "order", Root: in.Cover.Root}, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}}}}
	cover := &Cover{Domain: "order", Root: in.Cover.Root.Value, CorrelationID: "corr"}
	cc := &pb.ContextualCommand{}
	if err := proto.Unmarshal(ContextualCommand(marshal(t, book), cover, cb), cc); err != nil {
		t.Fatal(err)
	}
	if cc.GetEvents().GetCover().GetCorrelationId() != "corr" || len(cc.GetEvents().GetPages()) != 1 || !proto.Equal(cc.GetCommand(), in) {
		t.Fatalf("contextual %v", cc)
	}
	if err := proto.Unmarshal(ContextualCommand(nil, cover, nil), cc); err != nil || cc.GetEvents().GetCover().GetDomain() != "order" {
		t.Fatalf("empty contextual %v %v", err, cc)
	}
	cr := &pb.CommandResponse{}
	if err := proto.Unmarshal(CommandResponse(marshal(t, book), cover), cr); err != nil ||
		cr.GetEvents().GetCover().GetCorrelationId() != "corr" || len(cr.GetEvents().GetPages()) != 1 {
		t.Fatalf("response %v %v", err, cr)
	}
	// A large book needs a multi-byte length.
	big := &pb.EventBook{}
	for i := 0; i < 200; i++ {
		big.Pages = append(big.Pages, &pb.EventPage{Event: anyOf(t, wrapperspb.Int64(int64(i)))})
	}
	if err := proto.Unmarshal(CommandResponse(marshal(t, big), cover), cr); err != nil || len(cr.GetEvents().GetPages()) != 200 {
		t.Fatalf("big response %v", err)
	}
}

func TestMalformed(t *testing.T) {
	for _, b := range [][]byte{
		{0xff},                   // bad tag
		{0x0a, 0x05, 0x01},       // truncated cover
		{0x32, 0x02, 0xff, 0xfe}, // idempotency key not UTF-8
	} {
		if _, err := DecodeCommandBook(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: err = %v", b, err)
		}
	}
}

// TestFramedContextualCommand: the one-allocation framing gives exactly the
// bytes of framing ContextualCommand's message.
func TestFramedContextualCommand(t *testing.T) {
	in := sampleCommand(t)
	cb, _ := DecodeCommandBook(marshal(t, in))
	cover := &Cover{Domain: "order", Root: in.Cover.Root.Value, CorrelationID: "corr"}
	big := &pb.EventBook{}
	for i := 0; i < 300; i++ {
		big.Pages = append(big.Pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: uint32(i)}, Event: anyOf(t, wrapperspb.Int64(int64(i)))})
	}
	books := [][]byte{nil, marshal(t, &pb.EventBook{Pages: big.Pages[:1]}), marshal(t, big)}
	for _, book := range books {
		for _, cv := range []*Cover{nil, cover} {
			for _, cmd := range []*CommandBook{nil, cb, {Cover: cover}} {
				msg := ContextualCommand(book, cv, cmd)
				want := append([]byte{0, 0, 0, 0, 0}, msg...)
				want[1], want[2], want[3], want[4] = byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
				got := FramedContextualCommand(book, cv, cmd)
				if string(got) != string(want) {
					t.Fatalf("book %d bytes, cover %v, cmd %v: framed %x, want %x", len(book), cv != nil, cmd != nil, got, want)
				}
				if cap(got) != len(got) {
					t.Fatalf("capacity %d for %d bytes: the size was not computed exactly", cap(got), len(got))
				}
				// Built in a reused buffer holding an earlier, longer
				// message: the same bytes, in dst's storage when it fits.
				dst := make([]byte, 0, 1<<16)
				dst = append(dst, bytes.Repeat([]byte{0xff}, 1<<15)...)
				again := AppendFramedContextualCommand(dst, book, cv, cmd)
				if string(again) != string(want) {
					t.Fatalf("book %d bytes, cover %v, cmd %v: in a reused buffer %x, want %x", len(book), cv != nil, cmd != nil, again, want)
				}
				if fits := len(want) <= cap(dst); fits != (&again[0] == &dst[:1][0]) {
					t.Fatalf("%d bytes in a buffer of %d: reused %v", len(want), cap(dst), !fits)
				}
			}
		}
	}
}
