package wire

import (
	"testing"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestPageFieldsLayouts: PageFields gives the page fields in order whether
// they are contiguous (returned in place, without room to append over the
// fields that follow them) or interleaved with other fields (copied).
func TestPageFieldsLayouts(t *testing.T) {
	page := func(n uint32) []byte {
		b := protowire.AppendTag(nil, 3, protowire.BytesType)
		return protowire.AppendBytes(b, marshal(t, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: n}, Event: anyOf(t, wrapperspb.Int64(int64(n)))}))
	}
	cover := marshal(t, &pb.EventBook{Cover: &pb.Cover{Domain: "d"}})
	state := marshal(t, &pb.EventBook{SnapshotState: anyOf(t, wrapperspb.Int64(9))})
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	p0, p1, p2 := page(0), page(1), page(2)
	for _, c := range []struct {
		name      string
		book      []byte
		want      []byte
		aliased   bool
		wantEmpty bool
	}{
		{"no pages", cover, nil, false, true},
		{"contiguous", cat(cover, p0, p1, p2, state), cat(p0, p1, p2), true, false},
		{"one page", cat(p0), p0, true, false},
		{"interleaved", cat(p0, cover, p1, state, p2), cat(p0, p1, p2), false, false},
		{"split after two", cat(cover, p0, p1, state, p2), cat(p0, p1, p2), false, false},
	} {
		got, err := PageFields(c.book)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.wantEmpty {
			if got != nil {
				t.Fatalf("%s: %x, want nil", c.name, got)
			}
			continue
		}
		if string(got) != string(c.want) {
			t.Fatalf("%s: %x, want %x", c.name, got, c.want)
		}
		inPlace := false
		for i := range c.book {
			inPlace = inPlace || &got[0] == &c.book[i]
		}
		if inPlace != c.aliased || (inPlace && cap(got) != len(got)) {
			t.Fatalf("%s: in place %v (capacity %d for %d bytes), want %v", c.name, inPlace, cap(got), len(got), c.aliased)
		}
		before := string(c.book)
		_ = append(got, 0xff)
		if string(c.book) != before {
			t.Fatalf("%s: appending to the result changed the book", c.name)
		}
	}
}
