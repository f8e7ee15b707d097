package schemareg_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/schemareg"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/sqlite"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/schema/schematest"
)

// descriptors compiles one .proto (package shop) into a descriptor set as
// protoc --include_imports would write it.
func descriptors(t *testing.T, src string) []byte {
	t.Helper()
	return schematest.Marshal(t, "shop.proto", "syntax = \"proto3\";\npackage shop;\n"+src)
}

// event packs a message of the compiled type name with no fields set (the
// registry looks only at type URLs).
func event(t *testing.T, set []byte, name string) *anypb.Any {
	t.Helper()
	var fds descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(set, &fds); err != nil {
		t.Fatal(err)
	}
	fd, err := protodesc.NewFile(fds.File[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().ByName(protoreflect.Name(name[strings.LastIndex(name, ".")+1:]))
	a, err := anypb.New(dynamicpb.NewMessage(md))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const (
	v1 = `message Credited { string customer = 1; int32 points = 2; }`
	// v2 adds a field: compatible.
	v2 = `message Credited { string customer = 1; int32 points = 2; string reason = 3; }`
	// broken drops points without reserving it.
	broken = `message Credited { string customer = 1; string reason = 3; }`
	// renamed renames the event type.
	renamed = `message PointsCredited { string customer = 1; int32 points = 2; }`
)

// backend is a store the registry runs on, reopened by reopen (a restart).
type backend struct {
	name   string
	open   func(t *testing.T) schemareg.Store
	reopen func(t *testing.T) schemareg.Store
}

func backends(t *testing.T) []backend {
	dir := t.TempDir()
	sq := func(t *testing.T) schemareg.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(dir, "events.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	var addr string
	rd := func(t *testing.T) schemareg.Store {
		if addr == "" {
			addr = testredis.Start(t)
		}
		s, err := redis.Open(t.Context(), redis.Options{Addrs: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	return []backend{{"sqlite", sq, sq}, {"redis", rd, rd}}
}

// appendEvents stores n events of one type in domain "loyalty", as the
// gRPC server would, through the recording decorator.
func appendEvents(t *testing.T, st store.Store, reg *schemareg.Registry, ev *anypb.Any, n int) {
	t.Helper()
	rec := schemareg.Recording{Store: st, R: reg}
	for range n {
		agg := store.Aggregate{Domain: "loyalty", Root: uuid.New()}
		if _, err := rec.Append(t.Context(), &store.AppendRequest{Aggregate: agg, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: ev}}}); err != nil {
			t.Fatal(err)
		}
	}
}

func status1(t *testing.T, reg *schemareg.Registry) *pb.DomainSchema {
	t.Helper()
	s, err := reg.Status(t.Context(), "loyalty")
	if err != nil {
		t.Fatal(err)
	}
	return s.GetDomains()[0]
}

func versions(d *pb.DomainSchema) map[string]uint32 {
	out := map[string]uint32{}
	for _, ty := range d.GetTypes() {
		out[ty.GetType()] = ty.GetVersion()
	}
	return out
}

func TestRegistryLifecycle(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			reg := schemareg.New(st, schemareg.Options{})
			set1 := descriptors(t, v1)

			// Stored before any descriptors: version 0, unprotected.
			appendEvents(t, st.(store.Store), reg, event(t, set1, "shop.Credited"), 3)
			if got := versions(status1(t, reg)); got["shop.Credited"] != 0 || len(got) != 1 {
				t.Fatalf("after first use without descriptors: %v, want shop.Credited at version 0", got)
			}
			// Registered: version 1.
			resp, err := reg.Register(t.Context(), "loyalty", set1, false, "test")
			if err != nil || !resp.GetRecorded() || resp.GetTypes()[0].GetVersion() != 1 {
				t.Fatalf("register v1: %v %v", resp, err)
			}
			// The same again records nothing.
			if resp, err := reg.Register(t.Context(), "loyalty", set1, false, "test"); err != nil || resp.GetRecorded() {
				t.Fatalf("register v1 again: %v %v, want nothing recorded", resp, err)
			}
			// Compatible: version 2.
			if resp, err := reg.Register(t.Context(), "loyalty", descriptors(t, v2), false, "test"); err != nil || resp.GetTypes()[0].GetVersion() != 2 {
				t.Fatalf("register v2: %v %v", resp, err)
			}
			before := status1(t, reg)

			// Breaking: refused, with the stored count; nothing recorded.
			_, err = reg.Register(t.Context(), "loyalty", descriptors(t, broken), false, "ci")
			var ref *schemareg.Refusal
			if !errors.As(err, &ref) || !errors.Is(err, schemareg.ErrRefused) {
				t.Fatalf("register broken: %v, want a refusal", err)
			}
			var rules []string
			for _, c := range ref.GetChanges() {
				rules = append(rules, c.GetRule())
				if c.GetType() != "shop.Credited" || c.GetStoredEvents() != 3 || c.GetStoredEventsPartial() {
					t.Errorf("change %v: want type shop.Credited and 3 stored events, counted fully", c)
				}
			}
			if strings.Join(rules, ",") != "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED,FIELD_NO_DELETE_UNLESS_NAME_RESERVED" {
				t.Errorf("rules %v", rules)
			}
			after := status1(t, reg)
			if after.GetDescriptorsFingerprint() != before.GetDescriptorsFingerprint() || versions(after)["shop.Credited"] != 2 {
				t.Errorf("a refused register recorded something: before %v, after %v", before, after)
			}
			if after.GetLastRefusal().GetSource() != "ci" || len(after.GetLastRefusal().GetChanges()) != 2 {
				t.Errorf("status does not show the refusal: %v", after.GetLastRefusal())
			}
			// A renamed event type is refused too.
			if _, err := reg.Register(t.Context(), "loyalty", descriptors(t, renamed), true, "ci"); !errors.As(err, &ref) || ref.GetChanges()[0].GetRule() != "MESSAGE_NO_DELETE" {
				t.Errorf("register renamed: %v, want MESSAGE_NO_DELETE", err)
			}

			// A restart: the registry reads itself back from the store.
			reg2 := schemareg.New(b.reopen(t), schemareg.Options{})
			restarted := status1(t, reg2)
			if versions(restarted)["shop.Credited"] != 2 || restarted.GetDescriptorsFingerprint() != before.GetDescriptorsFingerprint() {
				t.Errorf("after a restart: %v, want version 2 and the same descriptors", restarted)
			}
			if _, err := reg2.Register(t.Context(), "loyalty", descriptors(t, broken), true, "ci"); !errors.Is(err, schemareg.ErrRefused) {
				t.Errorf("after a restart the broken change is no longer refused: %v", err)
			}
			d, err := reg2.Descriptors(t.Context(), "loyalty")
			if err != nil || len(d.GetTypes()) != 1 || len(d.GetTypes()[0].GetFileDescriptorSet()) == 0 {
				t.Errorf("Descriptors: %v %v", d, err)
			}
		})
	}
}

func TestFirstUseTakesTheCurrentDescriptors(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := schemareg.New(st, schemareg.Options{})
	set := descriptors(t, v1)
	if _, err := reg.Register(t.Context(), "loyalty", set, false, "test"); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st, reg, event(t, set, "shop.Credited"), 1)
	got := status1(t, reg).GetTypes()
	if len(got) != 1 || got[0].GetVersion() != 1 || got[0].GetFingerprint() == "" {
		t.Fatalf("types %v, want shop.Credited at version 1 with a fingerprint", got)
	}
	if _, err := reg.Register(t.Context(), "loyalty", descriptors(t, broken), true, "ci"); !errors.Is(err, schemareg.ErrRefused) {
		t.Errorf("a type recorded at first use is not protected: %v", err)
	}
}

// Over gRPC, a refusal is FAILED_PRECONDITION with the SchemaRefusal in
// its details; bad input is INVALID_ARGUMENT.
func TestServiceRefusalDetails(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := schemareg.New(st, schemareg.Options{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	reg.Serve(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pb.NewSchemaRegistryClient(conn)
	ctx := context.Background()
	set := descriptors(t, v1)
	if _, err := c.Register(ctx, &pb.RegisterSchemaRequest{Domain: "loyalty", FileDescriptorSet: set}); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st, reg, event(t, set, "shop.Credited"), 2)
	_, err = c.Register(ctx, &pb.RegisterSchemaRequest{Domain: "loyalty", FileDescriptorSet: descriptors(t, broken), Source: "ci"})
	s := status.Convert(err)
	if s.Code() != codes.FailedPrecondition {
		t.Fatalf("broken: %v, want FAILED_PRECONDITION", err)
	}
	var found bool
	for _, d := range s.Details() {
		if r, ok := d.(*pb.SchemaRefusal); ok && len(r.GetChanges()) == 2 && r.GetChanges()[0].GetStoredEvents() == 2 {
			found = true
		}
	}
	if !found {
		t.Errorf("no SchemaRefusal with 2 changes and 2 stored events in %v", s.Details())
	}
	for name, req := range map[string]*pb.RegisterSchemaRequest{
		"not a set":      {Domain: "loyalty", FileDescriptorSet: []byte{0xff, 0xff}},
		"bad domain":     {Domain: "Bad Domain", FileDescriptorSet: set},
		"registry's own": {Domain: schemareg.Domain, FileDescriptorSet: set},
	} {
		if _, err := c.Register(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
}
