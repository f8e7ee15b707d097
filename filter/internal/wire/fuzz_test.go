package wire

import (
	"testing"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeCommandBook checks the hand-written decoder against the
// generated code: it never panics, accepts what protobuf accepts, and
// re-encodes to a message protobuf reads as equal.
func FuzzDecodeCommandBook(f *testing.F) {
	f.Add(marshal(f, sampleCommand(f)))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		cb, err := DecodeCommandBook(b)
		want := &pb.CommandBook{}
		perr := proto.Unmarshal(b, want)
		if perr != nil {
			return // we may accept more (we do not validate Any payloads)
		}
		if err != nil {
			t.Fatalf("protobuf accepts %x, wire refuses it: %v", b, err)
		}
		got := &pb.CommandBook{}
		if err := proto.Unmarshal(cb.Append(nil), got); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("re-encoded %v, want %v", got, want)
		}
	})
}

// FuzzDecodeEventBook does the same for EventBook (the logic's answer and
// Record's request).
func FuzzDecodeEventBook(f *testing.F) {
	f.Add(marshal(f, &pb.EventBook{Cover: &pb.Cover{Domain: "d"}, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Force{Force: true}}}}))
	f.Add([]byte{0x1a, 0x02, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		eb, err := DecodeEventBook(b)
		want := &pb.EventBook{}
		if proto.Unmarshal(b, want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("protobuf accepts %x, wire refuses it: %v", b, err)
		}
		got := &pb.EventBook{}
		if err := proto.Unmarshal(eb.Append(nil), got); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		// force=false selects the oneof arm but means "not forced"; wire
		// treats it as unset.
		for _, p := range want.GetPages() {
			if f, ok := p.GetSequence().(*pb.EventPage_Force); ok && !f.Force {
				p.Sequence = nil
			}
		}
		if !proto.Equal(got, want) {
			t.Fatalf("re-encoded %v, want %v", got, want)
		}
	})
}

// FuzzDecodeLoadResponse checks the event service's answers never panic
// the decoder.
func FuzzDecodeLoadResponse(f *testing.F) {
	f.Add(marshal(f, &pb.LoadResponse{NextSequence: 3, Prior: &pb.AppendResponse{Duplicate: true}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeLoadResponse(b)
		want := &pb.LoadResponse{}
		if proto.Unmarshal(b, want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("protobuf accepts %x, wire refuses it: %v", b, err)
		}
		if r.NextSequence != want.GetNextSequence() || r.MoreFrom != want.GetMoreFrom() || (r.Prior != nil) != (want.Prior != nil) {
			t.Fatalf("decoded %+v, want %v", r, want)
		}
	})
}
