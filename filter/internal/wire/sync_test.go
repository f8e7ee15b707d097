package wire

import (
	"testing"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/protobuf/proto"
)

func TestSyncMessages(t *testing.T) {
	root := &pb.UUID{Value: []byte("0123456789abcdef")}
	book := &pb.EventBook{Cover: &pb.Cover{Domain: "order", Root: root}, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 4}}}}
	proj := &pb.Projection{Cover: &pb.Cover{Domain: "order"}, Projector: "summary", Sequence: 4, Projection: anyOf(t, book.Cover)}
	other := &pb.EventBook{Cover: &pb.Cover{Domain: "customer", Root: root}, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}}}}

	// BookWithCover adds the correlation id to a stored book.
	withCover := BookWithCover(marshal(t, book), &Cover{Domain: "order", Root: root.Value, CorrelationID: "c1"})
	got := &pb.EventBook{}
	if err := proto.Unmarshal(withCover, got); err != nil || got.GetCover().GetCorrelationId() != "c1" || got.GetPages()[0].GetNum() != 4 {
		t.Fatalf("BookWithCover: %v %v", got, err)
	}

	// SyncResponse: encode, decode, compare with the generated code.
	r := &SyncResponse{Events: withCover, Projections: [][]byte{marshal(t, proj), {}}, Cascade: [][]byte{marshal(t, other)}}
	cr := &pb.CommandResponse{}
	if err := proto.Unmarshal(r.Marshal(), cr); err != nil {
		t.Fatal(err)
	}
	want := &pb.CommandResponse{Events: got, Projections: []*pb.Projection{proj, {}}, Cascade: []*pb.EventBook{other}}
	if !proto.Equal(cr, want) {
		t.Fatalf("CommandResponse %v, want %v", cr, want)
	}
	back, err := DecodeSyncResponse(marshal(t, want))
	if err != nil || len(back.Projections) != 2 || len(back.Cascade) != 1 || back.Events == nil {
		t.Fatalf("DecodeSyncResponse: %+v %v", back, err)
	}
	if p, err := DecodeProjection(back.Projections[0]); err != nil || p.Projector != "summary" || p.Sequence != 4 || p.Cover.Domain != "order" {
		t.Fatalf("DecodeProjection: %+v %v", p, err)
	}

	// SagaResponse, origin and SyncCommandBook.
	cmds, err := DecodeSagaResponse(marshal(t, &pb.SagaResponse{Commands: []*pb.CommandBook{sampleCommand(t), {Cover: &pb.Cover{Domain: "x"}}}}))
	if err != nil || len(cmds) != 2 || cmds[1].Cover.Domain != "x" {
		t.Fatalf("DecodeSagaResponse: %v %v", cmds, err)
	}
	cmds[0].SetSagaOrigin(&SagaOrigin{SagaName: "s", TriggeringAggregate: &Cover{Domain: "order", Root: root.Value}, TriggeringEventSequence: 4})
	cmds[0].AutoResequence, cmds[0].IdempotencyKey = true, "k"
	scb := &pb.SyncCommandBook{}
	if err := proto.Unmarshal((&SyncCommandBook{Command: cmds[0], SyncMode: 2}).Marshal(), scb); err != nil {
		t.Fatal(err)
	}
	o := scb.GetCommand().GetSagaOrigin()
	if scb.GetSyncMode() != pb.SyncMode_SYNC_MODE_CASCADE || o.GetSagaName() != "s" || o.GetTriggeringEventSequence() != 4 ||
		string(o.GetTriggeringAggregate().GetRoot().GetValue()) != string(root.Value) || !scb.GetCommand().GetAutoResequence() ||
		scb.GetCommand().GetIdempotencyKey() != "k" || len(scb.GetCommand().GetPages()) != len(sampleCommand(t).GetPages()) {
		t.Fatalf("SyncCommandBook %v", scb)
	}

	for name, b := range map[string][]byte{"projection": {0x12, 0x01, 0xff}, "cascade": {0x1a, 0x02, 0x0a, 0x05}} {
		if _, err := DecodeSyncResponse(b); err == nil {
			t.Errorf("%s: malformed CommandResponse accepted", name)
		}
	}
}

// FuzzDecodeSyncResponse checks the answers of cascaded commands, sagas
// and projectors never panic the decoders and agree with protobuf.
func FuzzDecodeSyncResponse(f *testing.F) {
	f.Add(marshal(f, &pb.CommandResponse{Events: &pb.EventBook{Cover: &pb.Cover{Domain: "d"}}, Projections: []*pb.Projection{{Projector: "p"}},
		Cascade: []*pb.EventBook{{Pages: []*pb.EventPage{{}}}}}))
	f.Add(marshal(f, &pb.SagaResponse{Commands: []*pb.CommandBook{{Cover: &pb.Cover{Domain: "d"}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeSyncResponse(b)
		want := &pb.CommandResponse{}
		if proto.Unmarshal(b, want) == nil {
			if err != nil {
				t.Fatalf("protobuf accepts %x as CommandResponse, wire refuses it: %v", b, err)
			}
			// Unknown top-level fields are dropped (the parts stay raw).
			want.ProtoReflect().SetUnknown(nil)
			got := &pb.CommandResponse{}
			if err := proto.Unmarshal(r.Marshal(), got); err != nil || !proto.Equal(got, want) {
				t.Fatalf("re-encoded %v, want %v (%v)", got, want, err)
			}
		}
		cmds, err := DecodeSagaResponse(b)
		sr := &pb.SagaResponse{}
		if proto.Unmarshal(b, sr) == nil && (err != nil || len(cmds) != len(sr.GetCommands())) {
			t.Fatalf("protobuf reads %d commands from %x, wire %d (%v)", len(sr.GetCommands()), b, len(cmds), err)
		}
		_, _ = DecodeProjection(b)
	})
}
