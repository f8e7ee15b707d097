package wire

import (
	"testing"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestDecodeDecision: DecodeDecision decodes what DecodeEventBook decodes
// but the cover, and refuses exactly what DecodeEventBook refuses.
func TestDecodeDecision(t *testing.T) {
	pages := sizedPages(t)
	good := marshal(t, &pb.EventBook{Cover: &pb.Cover{Domain: "d", Root: &pb.UUID{Value: make([]byte, 16)}, CorrelationId: "c"},
		Pages: pages, SnapshotState: anyOf(t, wrapperspb.Int64(1))})
	book, err := DecodeEventBook(good)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeDecision(good)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Cover != nil {
		t.Fatalf("decision cover %+v, want none", dec.Cover)
	}
	dec.Cover = book.Cover
	got, want := &pb.EventBook{}, &pb.EventBook{}
	if err := proto.Unmarshal(dec.Marshal(), got); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(book.Marshal(), want); err != nil || !proto.Equal(got, want) {
		t.Fatalf("decision %v, book %v (%v)", got, want, err)
	}

	// Covers to refuse or to accept, as the cover field of a book.
	str := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	for i, cover := range [][]byte{
		str(2, []byte{0xff}),              // domain not UTF-8
		str(3, []byte{0xc3}),              // correlation id not UTF-8
		str(1, []byte{0x0a, 0x05, 0x01}),  // truncated root UUID
		{0x0a, 0x03},                      // truncated root field
		append(str(2, []byte("d")), 0x10), // truncated varint field
		protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1), // domain of the wrong type: unknown
		str(1, nil), // empty root
		str(9, []byte("unknown")),
	} {
		b := str(1, cover)
		_, errBook := DecodeEventBook(b)
		_, errDec := DecodeDecision(b)
		if (errBook == nil) != (errDec == nil) || (errBook != nil && errBook.Error() != errDec.Error()) {
			t.Errorf("cover %x: DecodeEventBook %v, DecodeDecision %v", cover, errBook, errDec)
		}
		if bad := i < 5; bad != (errDec != nil) {
			t.Errorf("cover %x: error %v, want one: %v", cover, errDec, bad)
		}
	}
}

// TestOnePageBooksDecodeInOneAllocation: a one-page book, its cover and
// its page come from one allocation (plus the cover's strings).
func TestOnePageBooksDecodeInOneAllocation(t *testing.T) {
	root := &pb.UUID{Value: make([]byte, 16)}
	cmd := marshal(t, &pb.CommandBook{Cover: &pb.Cover{Domain: "d", Root: root},
		Pages: []*pb.CommandPage{{Sequence: 3, Command: anyOf(t, wrapperspb.Int64(1))}}})
	book := marshal(t, &pb.EventBook{Cover: &pb.Cover{Domain: "d", Root: root},
		Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 3}, Event: anyOf(t, wrapperspb.Int64(1))}}})
	for _, c := range []struct {
		name   string
		decode func() error
		allocs float64
	}{
		{"CommandBook", func() error { _, err := DecodeCommandBook(cmd); return err }, 2},
		{"EventBook", func() error { _, err := DecodeEventBook(book); return err }, 2},
		{"decision", func() error { _, err := DecodeDecision(book); return err }, 1},
	} {
		if err := c.decode(); err != nil {
			t.Fatal(err)
		}
		if got := testing.AllocsPerRun(100, func() { _ = c.decode() }); got > c.allocs {
			t.Errorf("%s: %v allocations, want at most %v", c.name, got, c.allocs)
		}
	}
}
