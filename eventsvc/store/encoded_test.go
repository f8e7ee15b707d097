package store_test

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// TestAppendEncodedPage: the encoded pages are the bytes proto.Marshal
// writes for the same pages in a book, and decode back to them.
func TestAppendEncodedPage(t *testing.T) {
	big, _ := anypb.New(wrapperspb.Bytes(make([]byte, 300)))
	small, _ := anypb.New(wrapperspb.String("e"))
	cases := []struct {
		seq uint32
		us  int64
		ev  *anypb.Any
	}{
		{0, 0, small},
		{0, 1_700_000_000_123_456, small},
		{1, 1_700_000_000_000_000, &anypb.Any{}},
		{127, 999_999, big},
		{128, -1, small},
		{math.MaxUint32, -1_500_000, big},
		{300, 1_000_000, small},
	}
	var (
		enc  []byte
		want = &pb.EventBook{}
	)
	for _, c := range cases {
		ev, err := proto.Marshal(c.ev)
		if err != nil {
			t.Fatal(err)
		}
		enc = store.AppendEncodedPage(enc, c.seq, c.us, ev)
		want.Pages = append(want.Pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: c.seq}, CreatedAt: timestamppb.New(time.UnixMicro(c.us)), Event: c.ev})
		if len(enc) > 0 && store.EncodedPageSize(len(ev)) < len(store.AppendEncodedPage(nil, c.seq, c.us, ev)) {
			t.Fatalf("EncodedPageSize(%d) is below the encoded size", len(ev))
		}
	}
	marshalled, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(enc) != string(marshalled) {
		t.Fatalf("encoded %x\nmarshal %x", enc, marshalled)
	}
	got, err := store.DecodeEncodedPages(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&pb.EventBook{Pages: got}, want) {
		t.Fatalf("decoded %v, want %v", got, want.Pages)
	}
	// A book carrying encoded pages as unknown fields reads like one
	// carrying them as pages: what the gRPC server sends.
	sent := &pb.EventBook{Cover: &pb.Cover{Domain: "d"}, Snapshot: &pb.Snapshot{Sequence: 3}}
	sent.ProtoReflect().SetUnknown(enc)
	b, err := proto.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	received := &pb.EventBook{}
	if err := proto.Unmarshal(b, received); err != nil {
		t.Fatal(err)
	}
	want.Cover, want.Snapshot = sent.Cover, sent.Snapshot
	if !proto.Equal(received, want) {
		t.Fatalf("received %v, want %v", received, want)
	}
	if _, err := store.DecodeEncodedPages(enc[:len(enc)-1]); err == nil {
		t.Fatal("a truncated encoding decoded")
	}
}
