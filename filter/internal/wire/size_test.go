package wire

import (
	"strings"
	"testing"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// exact checks that an encoder's output is the bytes protobuf-go encodes
// for the same message, and that its precomputed size was exact (one
// allocation, no spare capacity).
func exact(t *testing.T, name string, got []byte, want proto.Message) {
	t.Helper()
	check(t, name, got, want, true)
}

// equivalent is exact for messages holding event pages with a sequence:
// protobuf-go writes the EventPage.sequence oneof after the page's other
// fields, this package in field order, so only the size, the decoded
// message and the capacity are compared.
func equivalent(t *testing.T, name string, got []byte, want proto.Message) {
	t.Helper()
	check(t, name, got, want, false)
}

func check(t *testing.T, name string, got []byte, want proto.Message, sameBytes bool) {
	t.Helper()
	w, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBytes {
		back := want.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(got, back); err != nil || !proto.Equal(back, want) || len(got) != len(w) {
			t.Fatalf("%s: %d bytes (protobuf: %d), decoding: %v, same message: %v", name, len(got), len(w), err, proto.Equal(back, want))
		}
	} else if string(got) != string(w) {
		i := 0
		for i < len(got) && i < len(w) && got[i] == w[i] {
			i++
		}
		t.Fatalf("%s: %d bytes, protobuf encodes %d; first difference at byte %d: %x vs %x", name, len(got), len(w), i,
			got[i:min(i+16, len(got))], w[i:min(i+16, len(w))])
	}
	if cap(got) != len(got) {
		t.Fatalf("%s: capacity %d for %d bytes: the size was not computed exactly", name, cap(got), len(got))
	}
}

// sizedPages returns event pages of every kind, one of them large enough
// to need a multi-byte length (twice: 2 and 3 length bytes).
func sizedPages(t *testing.T) []*pb.EventPage {
	return []*pb.EventPage{
		{Sequence: &pb.EventPage_Num{Num: 0}, Event: anyOf(t, wrapperspb.Int64(1))},
		{Sequence: &pb.EventPage_Num{Num: 300}, CreatedAt: timestamppb.Now(), Event: anyOf(t, wrapperspb.String(strings.Repeat("x", 200)))},
		{Sequence: &pb.EventPage_Force{Force: true}, Event: anyOf(t, wrapperspb.String(strings.Repeat("y", 20000)))},
		{Event: anyOf(t, wrapperspb.Int64(3))},
		{Sequence: &pb.EventPage_Num{Num: 7}},
	}
}

func toEventPages(t *testing.T, ps []*pb.EventPage) []*EventPage {
	eb, err := DecodeEventBook(marshal(t, &pb.EventBook{Pages: ps}))
	if err != nil {
		t.Fatal(err)
	}
	return eb.Pages
}

func TestEncodersMatchProtobuf(t *testing.T) {
	root := make([]byte, 16)
	root[0] = 0xab
	pbCover := &pb.Cover{Domain: "order", Root: &pb.UUID{Value: root}, CorrelationId: strings.Repeat("c", 130)}
	built := &Cover{Domain: "order", Root: root, CorrelationID: strings.Repeat("c", 130)}
	decoded, err := DecodeCover(marshal(t, pbCover))
	if err != nil {
		t.Fatal(err)
	}
	pages := sizedPages(t)

	for name, cover := range map[string]*Cover{"built cover": built, "decoded cover": decoded} {
		exact(t, name+": LoadRequest", (&LoadRequest{Cover: cover, IdempotencyKey: "k"}).Marshal(),
			&pb.LoadRequest{Cover: pbCover, IdempotencyKey: "k"})
		exact(t, name+": delayed LoadRequest", (&LoadRequest{Cover: cover, IdempotencyKey: "k", DelayMs: 300}).Marshal(),
			&pb.LoadRequest{Cover: pbCover, IdempotencyKey: "k", DelayMs: 300})
		exact(t, name+": continuation LoadRequest", (&LoadRequest{Cover: cover, FromSequence: 70, ToSequence: 300}).Marshal(),
			&pb.LoadRequest{Cover: pbCover, FromSequence: 70, ToSequence: 300})
		equivalent(t, name+": AppendRequest", (&AppendRequest{Cover: cover, ExpectedSequence: 300, Pages: toEventPages(t, pages),
			SnapshotState: marshal(t, anyOf(t, wrapperspb.Int64(9))), IdempotencyKey: "key"}).Marshal(),
			&pb.AppendRequest{Cover: pbCover, ExpectedSequence: 300, Pages: pages, SnapshotState: anyOf(t, wrapperspb.Int64(9)), IdempotencyKey: "key"})
		exact(t, name+": SequenceConflict", (&SequenceConflict{Cover: cover, ExpectedSequence: 1, NextSequence: 200}).Marshal(),
			&pb.SequenceConflict{Cover: pbCover, ExpectedSequence: 1, NextSequence: 200})
		equivalent(t, name+": EventBook", (&EventBook{Cover: cover, Pages: toEventPages(t, pages)}).Marshal(),
			&pb.EventBook{Cover: pbCover, Pages: pages})
		equivalent(t, name+": BookWithCover", BookWithCover(marshal(t, &pb.EventBook{Pages: pages}), cover),
			&pb.EventBook{Cover: pbCover, Pages: pages})
		equivalent(t, name+": CommandResponse", CommandResponse(marshal(t, &pb.EventBook{Pages: pages}), cover),
			&pb.CommandResponse{Events: &pb.EventBook{Cover: pbCover, Pages: pages}})
		exact(t, name+": ContextualCommand without history", ContextualCommand(nil, cover, nil),
			&pb.ContextualCommand{Events: &pb.EventBook{Cover: pbCover}})
	}
	exact(t, "empty AppendRequest", (&AppendRequest{}).Marshal(), &pb.AppendRequest{})
	exact(t, "empty LoadRequest", (&LoadRequest{}).Marshal(), &pb.LoadRequest{})
	exact(t, "empty CommandResponse", CommandResponse(nil, nil), &pb.CommandResponse{Events: &pb.EventBook{}})

	in := sampleCommand(t)
	in.Pages = append(in.Pages, &pb.CommandPage{Sequence: 1, Command: anyOf(t, wrapperspb.String(strings.Repeat("z", 300)))})
	cb, err := DecodeCommandBook(marshal(t, in))
	if err != nil {
		t.Fatal(err)
	}
	exact(t, "decoded CommandBook", cb.Marshal(), in)
	exact(t, "SyncCommandBook", (&SyncCommandBook{Command: cb, SyncMode: 2}).Marshal(),
		&pb.SyncCommandBook{Command: in, SyncMode: pb.SyncMode_SYNC_MODE_CASCADE})
	exact(t, "empty SyncCommandBook", (&SyncCommandBook{}).Marshal(), &pb.SyncCommandBook{})
	book := marshal(t, &pb.EventBook{Pages: pages})
	equivalent(t, "ContextualCommand", ContextualCommand(book, nil, cb),
		&pb.ContextualCommand{Events: &pb.EventBook{Pages: pages}, Command: in})

	// A command built here: a new saga origin, a root without its raw UUID.
	origin := &SagaOrigin{SagaName: "saga", TriggeringAggregate: built, TriggeringEventSequence: 5}
	made := &CommandBook{Cover: built, Pages: cb.Pages, AutoResequence: true, IdempotencyKey: "idem"}
	made.SetSagaOrigin(origin)
	if cap(made.sagaOriginRaw) != len(made.sagaOriginRaw) {
		t.Fatalf("saga origin: capacity %d for %d bytes", cap(made.sagaOriginRaw), len(made.sagaOriginRaw))
	}
	exact(t, "built CommandBook", made.Marshal(), &pb.CommandBook{Cover: pbCover, Pages: in.Pages,
		SagaOrigin:     &pb.SagaCommandOrigin{SagaName: "saga", TriggeringAggregate: pbCover, TriggeringEventSequence: 5},
		AutoResequence: true, IdempotencyKey: "idem"})

	proj := marshal(t, &pb.Projection{Projector: "p", Sequence: 3})
	equivalent(t, "SyncResponse", (&SyncResponse{Events: book, Projections: [][]byte{proj, nil}, Cascade: [][]byte{book}}).Marshal(),
		&pb.CommandResponse{Events: &pb.EventBook{Pages: pages}, Projections: []*pb.Projection{{Projector: "p", Sequence: 3}, {}},
			Cascade: []*pb.EventBook{{Pages: pages}}})

	detail := anyOf(t, &pb.SequenceConflict{ExpectedSequence: 1})
	exact(t, "Any", Any(detail.TypeUrl, detail.Value), detail)
	exact(t, "RPCStatus", RPCStatus(10, strings.Repeat("m", 200), Any(detail.TypeUrl, detail.Value)),
		&spb.Status{Code: 10, Message: strings.Repeat("m", 200), Details: []*anypb.Any{detail}})
}

// TestFramedCommandResponse: the one-allocation framing gives exactly the
// bytes of framing CommandResponse's message.
func TestFramedCommandResponse(t *testing.T) {
	cover := &Cover{Domain: "order", Root: make([]byte, 16), CorrelationID: "corr"}
	for _, book := range [][]byte{nil, marshal(t, &pb.EventBook{Pages: sizedPages(t)})} {
		for _, cv := range []*Cover{nil, cover} {
			msg := CommandResponse(book, cv)
			want := append([]byte{0, byte(len(msg) >> 24), byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg...)
			got := FramedCommandResponse(book, cv)
			if string(got) != string(want) {
				t.Fatalf("book %d bytes, cover %v: framed %x, want %x", len(book), cv != nil, got, want)
			}
			if cap(got) != len(got) {
				t.Fatalf("capacity %d for %d bytes", cap(got), len(got))
			}
		}
	}
}

// TestVarintFastPaths: the inline one-byte cases agree with protowire on
// both sides of every boundary.
func TestVarintFastPaths(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 1<<32 - 1, 1<<64 - 1} {
		if got, want := appendVarint([]byte{9}, v), protowire.AppendVarint([]byte{9}, v); string(got) != string(want) {
			t.Errorf("appendVarint(%d) = %x, want %x", v, got, want)
		}
		if got, want := sizeVarint(v), protowire.SizeVarint(v); got != want {
			t.Errorf("sizeVarint(%d) = %d, want %d", v, got, want)
		}
	}
	for _, num := range []protowire.Number{1, 15, 16, 2047, 2048, protowire.MaxValidNumber} {
		for _, typ := range []protowire.Type{protowire.VarintType, protowire.BytesType} {
			if got, want := appendTag(nil, num, typ), protowire.AppendTag(nil, num, typ); string(got) != string(want) {
				t.Errorf("appendTag(%d, %d) = %x, want %x", num, typ, got, want)
			}
		}
		if got, want := sizeTag(num), protowire.SizeTag(num); got != want {
			t.Errorf("sizeTag(%d) = %d, want %d", num, got, want)
		}
		for _, n := range []int{0, 0x7f, 0x80, 20000} {
			if got, want := fieldSize(num, n), protowire.SizeTag(num)+protowire.SizeBytes(n); got != want {
				t.Errorf("fieldSize(%d, %d) = %d, want %d", num, n, got, want)
			}
			want := protowire.AppendVarint(protowire.AppendTag([]byte{9}, num, protowire.BytesType), uint64(n))
			if got := appendHeader([]byte{9}, num, n); string(got) != string(want) {
				t.Errorf("appendHeader(%d, %d) = %x, want %x", num, n, got, want)
			}
		}
	}
}
