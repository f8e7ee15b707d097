package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/schema/schematest"
)

// compileSet compiles one .proto (package loyalty) into a descriptor set
// file, as protoc --include_imports --descriptor_set_out would, and returns
// the set.
func compileSet(t *testing.T, path, src string) *descriptorpb.FileDescriptorSet {
	t.Helper()
	set := schematest.Compile(t, "loyalty.proto", "syntax = \"proto3\";\npackage loyalty;\n"+src)
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, string(b))
	return set
}

func schemaTopology(es, name string) string {
	return fmt.Sprintf(`apiVersion: angzarr.io/v1alpha1
kind: Topology
metadata: {name: %s}
eventService: {address: %q}
domains:
  - name: loyalty
    service: 127.0.0.1
    port: 50999
    descriptors: {file: loyalty.binpb}
`, name, es)
}

// TestBreakingDescriptorsRejectTheTopology: with a domain's descriptors
// named in the topology, the control plane registers them with the event
// service's schema registry before it pushes; a set that would misread a
// stored event is refused, the topology with it (the last good one keeps
// serving, the error names the rule, the field and the stored count), and
// a compatible one goes through as a new version of the stored type.
func TestBreakingDescriptorsRejectTheTopology(t *testing.T) {
	es := eventsvctest.Start(t, "sqlite:"+filepath.Join(t.TempDir(), "events.db"))
	dir := t.TempDir()
	topo, descs := filepath.Join(dir, "topology.yaml"), filepath.Join(dir, "loyalty.binpb")
	set := compileSet(t, descs, `message Credited { string customer = 1; int32 points = 2; }`)
	writeAtomic(t, topo, schemaTopology(es, "v1"))
	cp, err := controlplane.New(controlplane.Config{Topology: topo, Filter: controlplane.Options{WasmFile: "/dev/null"},
		PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	clis := listen(t)
	serve(t, func(ctx context.Context) error { return cp.Serve(ctx, clis) })
	testutil.Eventually(t, "the first topology applied", func() bool { return cp.Publisher().Version() != "" })

	conn, err := grpc.NewClient(es, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := pb.NewSchemaRegistryClient(conn)
	ctx := context.Background()
	statusOf := func() *pb.DomainSchema {
		s, err := reg.Status(ctx, &pb.SchemaStatusRequest{Domain: "loyalty"})
		if err != nil {
			t.Fatal(err)
		}
		return s.GetDomains()[0]
	}
	if statusOf().GetDescriptorsFingerprint() == "" {
		t.Fatal("the control plane did not register the domain's descriptors before pushing")
	}

	// A Credited event is stored: its type is recorded at first use.
	fd, err := protodesc.NewFile(set.File[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := anypb.New(dynamicpb.NewMessage(fd.Messages().ByName("Credited")))
	if err != nil {
		t.Fatal(err)
	}
	root := uuid.New()
	if _, err := pb.NewEventStoreClient(conn).Append(ctx, &pb.AppendRequest{Cover: &pb.Cover{Domain: "loyalty", Root: &pb.UUID{Value: root[:]}},
		Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: ev}}}); err != nil {
		t.Fatal(err)
	}
	if got := statusOf().GetTypes(); len(got) != 1 || got[0].GetVersion() != 1 {
		t.Fatalf("stored types %v, want loyalty.Credited at version 1", got)
	}

	// points removed without reserving it: refused, with the topology.
	good := cp.Publisher().Version()
	compileSet(t, descs, `message Credited { string customer = 1; }`)
	writeAtomic(t, topo, schemaTopology(es, "v2"))
	testutil.Eventually(t, "the breaking descriptors refused", func() bool { return cp.LastError() != nil })
	msg := cp.LastError().Error()
	for _, want := range []string{"FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "loyalty.Credited.points", "1 stored", good} {
		if !strings.Contains(msg, want) {
			t.Errorf("the rejection does not say %q:\n%s", want, msg)
		}
	}
	if v := cp.Publisher().Version(); v != good {
		t.Errorf("version %q served after a refusal, want the last good %q", v, good)
	}
	if r := statusOf().GetLastRefusal(); len(r.GetChanges()) == 0 || !strings.HasPrefix(r.GetSource(), "controlplane: file ") {
		t.Errorf("the registry's status does not show the refusal: %v", r)
	}

	// A compatible change goes through: version 2 of the stored type.
	compileSet(t, descs, `message Credited { string customer = 1; int32 points = 2; string reason = 3; }`)
	writeAtomic(t, topo, schemaTopology(es, "v3"))
	testutil.Eventually(t, "the compatible descriptors applied", func() bool { return cp.LastError() == nil })
	if got := statusOf().GetTypes(); got[0].GetVersion() != 2 {
		t.Errorf("stored type after a compatible change: %v, want version 2", got)
	}
}
