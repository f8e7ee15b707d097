package client

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

func TestParseRoot(t *testing.T) {
	id := uuid.New()
	if got := ParseRoot(id.String()); got != id {
		t.Errorf("a UUID: %v, want itself", got)
	}
	if got, want := ParseRoot("alice"), uuid.NewSHA1(uuid.MustParse(roots.NamespaceID), []byte("alice")); got != want {
		t.Errorf("text: %v, want the UUIDv5 %v", got, want)
	}
}

// descriptorSet writes a FileDescriptorSet with acme.Ping{note} and a
// second CreateCustomer (in package acme).
func descriptorSet(t *testing.T) string {
	t.Helper()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{{
		Name: proto.String("acme/ping.proto"), Package: proto.String("acme"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Ping"), Field: []*descriptorpb.FieldDescriptorProto{{Name: proto.String("note"), JsonName: proto.String("note"), Number: proto.Int32(1), Type: &str, Label: &opt}}},
			{Name: proto.String("CreateCustomer")},
		},
	}}}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "set.pb")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTypes(t *testing.T) {
	builtin, err := LoadTypes("")
	if err != nil {
		t.Fatal(err)
	}
	withSet, err := LoadTypes(descriptorSet(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		types      *Types
		name, want string
		err        string
	}{
		{builtin, "examples.CreateCustomer", "examples.CreateCustomer", ""},
		{builtin, "CreateCustomer", "examples.CreateCustomer", ""},
		{builtin, "type.googleapis.com/examples.ShipmentCreated", "examples.ShipmentCreated", ""},
		{builtin, "angzarr.CommandBook", "angzarr.CommandBook", ""},
		{builtin, "examples.Nope", "", "unknown message type"},
		{builtin, "Nope", "", "give its full name"},
		{builtin, "acme.Ping", "", "unknown message type"},
		{withSet, "acme.Ping", "acme.Ping", ""},
		{withSet, "Ping", "acme.Ping", ""},
		{withSet, "CreateCustomer", "", "ambiguous: acme.CreateCustomer, examples.CreateCustomer"},
		{withSet, "examples.CreateCustomer", "examples.CreateCustomer", ""},
	} {
		mt, err := tc.types.Message(tc.name)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Message(%q): err %v, want %q", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("Message(%q): %v", tc.name, err)
		case string(mt.Descriptor().FullName()) != tc.want:
			t.Errorf("Message(%q) = %s, want %s", tc.name, mt.Descriptor().FullName(), tc.want)
		}
	}
	if _, err := LoadTypes(filepath.Join(t.TempDir(), "none.pb")); err == nil {
		t.Error("a missing descriptor set was accepted")
	}
}

func TestSendCommand(t *testing.T) {
	types, _ := LoadTypes("")
	c := SendConfig{Domain: "customer", Root: "alice", Type: "CreateCustomer", JSON: `{"name":"Alice","email":"a@example.com"}`,
		ExpectSequence: 3, AutoResequence: true, CorrelationID: "cid-1", IdempotencyKey: "k"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	book, err := c.Command(types)
	if err != nil {
		t.Fatal(err)
	}
	want := roots.Of("alice")
	if book.GetCover().GetDomain() != "customer" || !bytes.Equal(book.GetCover().GetRoot().GetValue(), want[:]) || book.GetCover().GetCorrelationId() != "cid-1" {
		t.Errorf("cover %v", book.GetCover())
	}
	if len(book.GetPages()) != 1 || book.GetPages()[0].GetSequence() != 3 || !book.GetAutoResequence() || book.GetIdempotencyKey() != "k" {
		t.Errorf("book %v", book)
	}
	var cc ex.CreateCustomer
	if err := book.GetPages()[0].GetCommand().UnmarshalTo(&cc); err != nil || cc.GetName() != "Alice" || cc.GetEmail() != "a@example.com" {
		t.Errorf("command %v (%v)", &cc, err)
	}

	// A type from a descriptor set is packed with its own type URL.
	set, _ := LoadTypes(descriptorSet(t))
	c = SendConfig{Domain: "acme", Root: uuid.NewString(), Type: "acme.Ping", JSON: `{"note":"hi"}`}
	if book, err = c.Command(set); err != nil {
		t.Fatal(err)
	}
	if got := book.GetPages()[0].GetCommand().GetTypeUrl(); got != "type.googleapis.com/acme.Ping" {
		t.Errorf("type URL %q", got)
	}
	// Empty JSON is the empty command; bad JSON names the type.
	c = SendConfig{Domain: "cart", Root: "c", Type: "examples.ClearCart"}
	if _, err := c.Command(types); err != nil {
		t.Errorf("no JSON: %v", err)
	}
	c.JSON = `{"nope":1}`
	if _, err := c.Command(types); err == nil || !strings.Contains(err.Error(), "examples.ClearCart") {
		t.Errorf("bad JSON: %v", err)
	}
}

func TestSendValidate(t *testing.T) {
	err := (&SendConfig{Sync: "eventually", Timeout: -1}).Validate()
	for _, want := range []string{"DOMAIN", "ROOT", "TYPE", `--sync "eventually"`, "--timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	for _, s := range []string{"", "none", "simple", "cascade"} {
		if err := (&SendConfig{Domain: "d", Root: "r", Type: "T", Sync: s}).Validate(); err != nil {
			t.Errorf("sync %q: %v", s, err)
		}
	}
	if syncMode("cascade") != pb.SyncMode_SYNC_MODE_CASCADE || syncMode("simple") != pb.SyncMode_SYNC_MODE_SIMPLE || syncMode("none") != pb.SyncMode_SYNC_MODE_NONE {
		t.Error("sync modes")
	}
}

func u32(v uint32) *uint32 { return &v }

func TestEventsQuery(t *testing.T) {
	at := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	root := roots.Of("alice")
	for _, tc := range []struct {
		name string
		cfg  EventsConfig
		want *pb.Query
	}{
		{"aggregate", EventsConfig{Domain: "customer", Root: "alice"},
			&pb.Query{Cover: &pb.Cover{Domain: "customer", Root: &pb.UUID{Value: root[:]}}}},
		{"domain", EventsConfig{Domain: "order"}, &pb.Query{Cover: &pb.Cover{Domain: "order"}}},
		{"raw", EventsConfig{Domain: "product", Raw: true}, &pb.Query{Cover: &pb.Cover{Domain: "product"}, Raw: true}},
		{"correlation", EventsConfig{CorrelationID: "c"}, &pb.Query{Cover: &pb.Cover{CorrelationId: "c"}}},
		{"range", EventsConfig{Domain: "order", From: u32(2), To: u32(5)},
			&pb.Query{Cover: &pb.Cover{Domain: "order"}, Selection: &pb.Query_Range{Range: &pb.SequenceRange{Lower: 2, Upper: u32(5)}}}},
		{"to only", EventsConfig{Domain: "order", To: u32(5)},
			&pb.Query{Cover: &pb.Cover{Domain: "order"}, Selection: &pb.Query_Range{Range: &pb.SequenceRange{Upper: u32(5)}}}},
		{"as of sequence", EventsConfig{Domain: "customer", Root: "alice", AsOfSequence: u32(1)},
			&pb.Query{Cover: &pb.Cover{Domain: "customer", Root: &pb.UUID{Value: root[:]}}, Selection: &pb.Query_Temporal{Temporal: &pb.TemporalQuery{PointInTime: &pb.TemporalQuery_AsOfSequence{AsOfSequence: 1}}}}},
		{"as of time", EventsConfig{Domain: "customer", Root: "alice", AsOfTime: at},
			&pb.Query{Cover: &pb.Cover{Domain: "customer", Root: &pb.UUID{Value: root[:]}}, Selection: &pb.Query_Temporal{Temporal: &pb.TemporalQuery{PointInTime: &pb.TemporalQuery_AsOfTime{AsOfTime: timestamppb.New(at)}}}}},
	} {
		if err := tc.cfg.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got := tc.cfg.Query(); !proto.Equal(got, tc.want) {
			t.Errorf("%s: query %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEventsValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  EventsConfig
		want string
	}{
		{EventsConfig{}, "DOMAIN"},
		{EventsConfig{Root: "r", CorrelationID: "c"}, "ROOT needs a DOMAIN"},
		{EventsConfig{Domain: "d", Root: "r", From: u32(1), AsOfSequence: u32(2)}, "choose one"},
		{EventsConfig{Domain: "d", From: u32(5), To: u32(2)}, "before --from"},
		{EventsConfig{Domain: "d", Root: "r", Follow: true, AsOfSequence: u32(2)}, "--follow"},
		{EventsConfig{Domain: "d", AsOfSequence: u32(2)}, "need one aggregate"},
		{EventsConfig{Domain: "d", Output: "yaml"}, `--output "yaml"`},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	if got, err := ParseTime("2026-11-26T04:00:00Z", now); err != nil || !got.Equal(now.Add(-time.Hour)) {
		t.Errorf("RFC 3339: %v %v", got, err)
	}
	if got, err := ParseTime("5m", now); err != nil || !got.Equal(now.Add(-5*time.Minute)) {
		t.Errorf("5m: %v %v", got, err)
	}
	if _, err := ParseTime("yesterday", now); err == nil {
		t.Error("yesterday accepted")
	}
	if v, err := ParseUint32("from", "7"); err != nil || *v != 7 {
		t.Errorf("7: %v %v", v, err)
	}
	for _, bad := range []string{"-1", "x", "4294967296"} {
		if _, err := ParseUint32("from", bad); err == nil || !strings.Contains(err.Error(), "--from") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestPrint(t *testing.T) {
	types, _ := LoadTypes("")
	root := roots.Of("alice")
	known, _ := anypb.New(&ex.CustomerCreated{Name: "Alice", Email: "a@example.com"})
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/acme.Secret", Value: []byte{1, 2, 3}}
	at := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	book := &pb.EventBook{Cover: &pb.Cover{Domain: "customer", Root: &pb.UUID{Value: root[:]}, CorrelationId: "c1"},
		Pages: []*pb.EventPage{
			{Sequence: &pb.EventPage_Num{Num: 0}, CreatedAt: timestamppb.New(at), Event: known},
			{Sequence: &pb.EventPage_Num{Num: 1}, Event: unknown},
		}}

	var js bytes.Buffer
	p := newPrinter(&js, OutputJSON, types)
	if err := p.book(book); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), js.String())
	}
	var l0, l1 EventLine
	if err := json.Unmarshal([]byte(lines[0]), &l0); err != nil {
		t.Fatal(err)
	}
	if l0.Domain != "customer" || l0.Root != root.String() || l0.CorrelationID != "c1" || l0.Sequence != 0 ||
		l0.Type != "examples.CustomerCreated" || l0.CreatedAt != "2026-11-26T05:00:00Z" || string(l0.Event) != `{"name":"Alice","email":"a@example.com"}` {
		t.Errorf("line 0: %s", lines[0])
	}
	if err := json.Unmarshal([]byte(lines[1]), &l1); err != nil {
		t.Fatal(err)
	}
	if l1.Sequence != 1 || l1.Type != "acme.Secret" || string(l1.Event) != "null" || !bytes.Equal(l1.EventBytes, []byte{1, 2, 3}) {
		t.Errorf("line 1: %s", lines[1])
	}

	var tbl bytes.Buffer
	p = newPrinter(&tbl, OutputTable, types)
	if err := p.book(book); err != nil {
		t.Fatal(err)
	}
	out := tbl.String()
	for _, want := range []string{"TIME", "SEQ", root.String(), "examples.CustomerCreated", `{"name":"Alice"`, "acme.Secret", "(unknown type, 3 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var empty bytes.Buffer
	if err := newPrinter(&empty, OutputTable, types).flush(); err != nil || !strings.Contains(empty.String(), "(no events)") {
		t.Errorf("no events: %q %v", empty.String(), err)
	}
}
