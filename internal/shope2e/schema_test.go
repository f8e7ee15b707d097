package shope2e_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/examples/go/product"
	"github.com/angzarr-mesh/angzarr/internal/devmesh"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// TestBreakingShopChangeIsRefused: the local mesh guards the shop's stored
// types. Once a product is stored, the registry holds ProductListed at
// version 1 (the control plane registers what the product logic serves by
// reflection). A deliberately breaking product.proto (ProductListed.price
// removed without reserving it), named as the product domain's descriptor
// file in the running mesh's topology, is refused by the control plane:
// the registry shows the refusal with the stored events it would misread,
// and the product proxy keeps serving with its last good configuration.
func TestBreakingShopChangeIsRefused(t *testing.T) {
	m := startMesh(t)
	ctx := ctxT(t, 2*time.Minute)
	root := uuid.New()
	m.send(ctx, product.Domain, root, "", 0, &ex.CreateProduct{Sku: "S-1", Name: "Mug", PriceCents: 900})

	reg := pb.NewSchemaRegistryClient(m.conn(m.ep.EventService))
	testutil.EventuallyWhy(t, func() (bool, string) {
		st, err := reg.Status(ctx, &pb.SchemaStatusRequest{Domain: product.Domain})
		if err != nil {
			return false, err.Error()
		}
		for _, ty := range st.GetDomains()[0].GetTypes() {
			if ty.GetType() == "examples.ProductListed" && ty.GetVersion() == 1 {
				return true, ""
			}
		}
		return false, "registry: " + st.String()
	})

	// product.proto with ProductListed.price dropped.
	fdp := protodesc.ToFileDescriptorProto((&ex.ProductListed{}).ProtoReflect().Descriptor().ParentFile())
	for _, msg := range fdp.GetMessageType() {
		if msg.GetName() == "ProductListed" {
			msg.Field = slices.DeleteFunc(msg.Field, func(f *descriptorpb.FieldDescriptorProto) bool { return f.GetName() == "price" })
		}
	}
	b, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{fdp}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dataDir, "product-broken.binpb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(m.dataDir, devmesh.TopologyFile)
	raw, err := os.ReadFile(topo)
	if err != nil {
		t.Fatal(err)
	}
	top, err := controlplane.DecodeTopology(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range top.Domains {
		if top.Domains[i].Name == product.Domain {
			top.Domains[i].Descriptors = &controlplane.DescriptorSource{File: "product-broken.binpb"}
		}
	}
	edited, err := yaml.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(topo+".tmp", edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(topo+".tmp", topo); err != nil {
		t.Fatal(err)
	}

	var refusal *pb.SchemaRefusal
	testutil.EventuallyWhy(t, func() (bool, string) {
		st, err := reg.Status(ctx, &pb.SchemaStatusRequest{Domain: product.Domain})
		if err != nil {
			return false, err.Error()
		}
		refusal = st.GetDomains()[0].GetLastRefusal()
		return refusal != nil, "no refusal yet"
	})
	var rules []string
	for _, c := range refusal.GetChanges() {
		rules = append(rules, c.GetRule()+" "+c.GetType()+"."+c.GetPath())
		if c.GetStoredEvents() != 1 {
			t.Errorf("%v: want 1 stored event counted", c)
		}
	}
	if !slices.Contains(rules, "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED examples.ProductListed.price") || !strings.Contains(refusal.GetSource(), "product-broken.binpb") {
		t.Errorf("refusal %v", refusal)
	}
	// The last good configuration serves on: the product still decides.
	m.send(ctx, product.Domain, root, "", 1, &ex.SetPrice{PriceCents: 1000})
}
