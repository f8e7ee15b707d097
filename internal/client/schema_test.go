package client

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// storedSet writes the descriptor set of the shop's customer events as
// this binary has them, after edit (nil: unchanged), as the descriptors
// events were stored under.
func storedSet(t *testing.T, edit func(*descriptorpb.FileDescriptorProto)) string {
	t.Helper()
	fdp := protodesc.ToFileDescriptorProto((&ex.CustomerCreated{}).ProtoReflect().Descriptor().ParentFile())
	if edit != nil {
		edit(fdp)
	}
	b, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{fdp}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "stored.binpb")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// withLegacyField adds `string legacy = 99;` to CustomerCreated: events
// stored with it would lose it silently under today's descriptors.
func withLegacyField(fdp *descriptorpb.FileDescriptorProto) {
	for _, m := range fdp.GetMessageType() {
		if m.GetName() == "CustomerCreated" {
			m.Field = append(m.Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String("legacy"), JsonName: proto.String("legacy"), Number: proto.Int32(99),
				Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			})
		}
	}
}

// reflectingServer serves gRPC reflection from this binary's registry, as
// every SDK-built logic service does.
func reflectingServer(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	reflection.Register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func TestSchemaCheck(t *testing.T) {
	ctx := t.Context()
	addr := reflectingServer(t)
	current := storedSet(t, nil)
	for _, tc := range []struct {
		name     string
		cfg      SchemaCheckConfig
		breaking bool
		want     []string // in the output
	}{
		{name: "same descriptors", cfg: SchemaCheckConfig{Against: current, DescriptorSet: current}, want: []string{"no breaking change in"}},
		{name: "same, by reflection", cfg: SchemaCheckConfig{Against: current, Reflect: addr, Types: []string{"type.googleapis.com/examples.CustomerCreated"}},
			want: []string{"no breaking change in 1 stored types (WIRE_JSON)"}},
		{name: "field dropped, by reflection", cfg: SchemaCheckConfig{Against: storedSet(t, withLegacyField), Reflect: addr, Types: []string{"examples.CustomerCreated"}},
			breaking: true, want: []string{"FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "examples.CustomerCreated", "legacy", "99"}},
		{name: "field dropped, file, wire, json output", cfg: SchemaCheckConfig{Against: storedSet(t, withLegacyField), DescriptorSet: current, Level: "wire", Output: OutputJSON},
			breaking: true, want: []string{`{"rule":"FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED","type":"examples.CustomerCreated","path":"legacy","number":99,`}},
		{name: "stored type the service does not define", cfg: SchemaCheckConfig{Against: storedSet(t, func(fdp *descriptorpb.FileDescriptorProto) {
			fdp.MessageType = append(fdp.MessageType, &descriptorpb.DescriptorProto{Name: proto.String("CustomerRetired")})
		}), Reflect: addr, Types: []string{"examples.CustomerRetired"}}, breaking: true, want: []string{"MESSAGE_NO_DELETE", "examples.CustomerRetired"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.cfg.Out = &out
			if tc.cfg.Output == "" {
				tc.cfg.Output = OutputTable
			}
			err := SchemaCheck(ctx, tc.cfg)
			if got := errors.Is(err, ErrBreaking); got != tc.breaking || (err != nil && !got) {
				t.Fatalf("err = %v, want breaking=%v\n%s", err, tc.breaking, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestSchemaCheckRefusesBadFlags(t *testing.T) {
	ctx := t.Context()
	set := storedSet(t, nil)
	for _, cfg := range []SchemaCheckConfig{
		{DescriptorSet: set},
		{Against: set},
		{Against: set, DescriptorSet: set, Reflect: "127.0.0.1:1"},
		{Against: set, DescriptorSet: set, Level: "file"},
		{Against: set, DescriptorSet: set, Types: []string{"not a name"}},
		{Against: filepath.Join(t.TempDir(), "missing.binpb"), DescriptorSet: set},
	} {
		cfg.Output, cfg.Out = OutputTable, &bytes.Buffer{}
		if err := SchemaCheck(ctx, cfg); err == nil || errors.Is(err, ErrBreaking) {
			t.Errorf("%+v: err = %v, want a usage error", cfg, err)
		}
	}
}

// withoutEmail drops CustomerCreated.email without reserving it.
func withoutEmail(fdp *descriptorpb.FileDescriptorProto) {
	for _, m := range fdp.GetMessageType() {
		if m.GetName() == "CustomerCreated" {
			m.Field = slices.DeleteFunc(m.Field, func(f *descriptorpb.FieldDescriptorProto) bool { return f.GetName() == "email" })
		}
	}
}

// TestSchemaAgainstTheRegistry: `schema check --domain` and `schema
// status` against a real event service whose registry recorded a stored
// CustomerCreated.
func TestSchemaAgainstTheRegistry(t *testing.T) {
	ctx := t.Context()
	es := eventsvctest.Start(t, "sqlite:"+filepath.Join(t.TempDir(), "events.db"))
	conn, err := grpc.NewClient(es, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	current, err := os.ReadFile(storedSet(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewSchemaRegistryClient(conn).Register(ctx, &pb.RegisterSchemaRequest{Domain: "customer", FileDescriptorSet: current, Source: "test"}); err != nil {
		t.Fatal(err)
	}
	ev, err := anypb.New(&ex.CustomerCreated{Name: "Alice", Email: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	root := ParseRoot("alice")
	if _, err := pb.NewEventStoreClient(conn).Append(ctx, &pb.AppendRequest{Cover: &pb.Cover{Domain: "customer", Root: &pb.UUID{Value: root[:]}},
		Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: ev}}}); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := SchemaCheck(ctx, SchemaCheckConfig{Domain: "customer", Addr: es, Reflect: reflectingServer(t), Output: OutputTable, Out: &out}); err != nil {
		t.Fatalf("the running binary against the registry: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "no breaking change in domain customer's 1 stored types") {
		t.Errorf("output: %s", out.String())
	}

	out.Reset()
	err = SchemaCheck(ctx, SchemaCheckConfig{Domain: "customer", Addr: es, DescriptorSet: storedSet(t, withoutEmail), Output: OutputTable, Out: &out})
	if !errors.Is(err, ErrBreaking) {
		t.Fatalf("email dropped: %v, want breaking\n%s", err, out.String())
	}
	for _, w := range []string{"STORED", "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "examples.CustomerCreated", "email"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("check output lacks %q:\n%s", w, out.String())
		}
	}
	if !regexp.MustCompile(`email\s+2\s+1\s`).MatchString(out.String()) {
		t.Errorf("check output does not count 1 stored event for #2:\n%s", out.String())
	}

	out.Reset()
	if err := SchemaStatus(ctx, SchemaStatusConfig{Domain: "customer", Addr: es, Output: OutputTable, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`customer\s+examples.CustomerCreated\s+event\s+1\s`).MatchString(out.String()) || !strings.Contains(out.String(), "from test") {
		t.Errorf("status output:\n%s", out.String())
	}
}
