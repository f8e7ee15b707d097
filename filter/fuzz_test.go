package filter

import (
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/grpcframe"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/protobuf/proto"
)

// FuzzRequestBody sends arbitrary request bodies through the whole state
// machine (Handle, HandleSync and Record): it never panics, always answers,
// and stores events only for requests protobuf itself decodes.
func FuzzRequestBody(f *testing.F) {
	seed := func(m proto.Message) []byte {
		b, _ := proto.Marshal(m)
		return grpcframe.Encode(b)
	}
	c := &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: make([]byte, 16)}}, Pages: []*pb.CommandPage{counter.Command(1, 0)}}
	f.Add(uint8(0), seed(c))
	f.Add(uint8(1), seed(&pb.SyncCommandBook{Command: c}))
	f.Add(uint8(2), seed(&pb.EventBook{Cover: c.Cover, Pages: []*pb.EventPage{counter.Event(1)}}))
	f.Add(uint8(0), []byte{1, 0, 0, 0, 0})
	paths := []string{PathHandle, PathHandleSync, PathRecord}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		hs := newHarness(t, typedConfig)
		path := paths[int(which)%len(paths)]
		r := hs.send(path, body)
		if r.code == OK && r.resp == nil {
			t.Fatalf("OK without a CommandResponse: %v", r)
		}
		total := 0
		for _, a := range hs.store.aggs {
			total += len(a.pages)
		}
		if total > 0 {
			msg, err := grpcframe.Decode(body)
			if err != nil {
				t.Fatalf("stored events for an unframed body")
			}
			var m proto.Message = &pb.CommandBook{}
			switch path {
			case PathHandleSync:
				m = &pb.SyncCommandBook{}
			case PathRecord:
				m = &pb.EventBook{}
			}
			if err := proto.Unmarshal(msg, m); err != nil {
				t.Fatalf("stored events for a body protobuf refuses: %v", err)
			}
			if book, ok := m.(*pb.EventBook); ok {
				for i, p := range book.GetPages() {
					if u := p.GetEvent().GetTypeUrl(); u[strings.LastIndex(u, "/")+1:] != counterEventType {
						t.Fatalf("Record stored page %d of type %q", i, u)
					}
				}
			}
		}
		if hs.p.Callouts() != 0 || hs.p.Streams() != 0 {
			t.Fatalf("leaked %d callouts, %d streams", hs.p.Callouts(), hs.p.Streams())
		}
	})
}
