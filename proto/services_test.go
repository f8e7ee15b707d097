package proto_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestDescriptorSetHasEveryRPC compiles proto/angzarr with protoc into a
// descriptor set and checks that every service and RPC of the protocol is
// there with the right request and response types.
func TestDescriptorSetHasEveryRPC(t *testing.T) {
	files, err := filepath.Glob("angzarr/*.proto")
	if err != nil || len(files) == 0 {
		t.Fatalf("no protos: %v", err)
	}
	out := filepath.Join(t.TempDir(), "angzarr.pb")
	args := append([]string{"-I", ".", "--include_imports", "--descriptor_set_out=" + out}, files...)
	if b, err := exec.Command("protoc", args...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}

	type rpc struct{ in, out string }
	got := map[string]rpc{}
	for _, f := range set.GetFile() {
		if f.GetPackage() != "angzarr" {
			continue
		}
		for _, s := range f.GetService() {
			for _, m := range s.GetMethod() {
				in, out := m.GetInputType(), m.GetOutputType()
				if m.GetClientStreaming() {
					in = "stream " + in
				}
				if m.GetServerStreaming() {
					out = "stream " + out
				}
				got[s.GetName()+"."+m.GetName()] = rpc{in, out}
			}
		}
	}

	want := map[string]rpc{
		"BusinessLogic.Handle":                      {".angzarr.ContextualCommand", ".angzarr.EventBook"},
		"BusinessCoordinator.Handle":                {".angzarr.CommandBook", ".angzarr.CommandResponse"},
		"BusinessCoordinator.HandleSync":            {".angzarr.SyncCommandBook", ".angzarr.CommandResponse"},
		"BusinessCoordinator.Record":                {".angzarr.EventBook", ".angzarr.CommandResponse"},
		"Projector.Handle":                          {".angzarr.EventBook", ".google.protobuf.Empty"},
		"Projector.HandleSync":                      {".angzarr.EventBook", ".angzarr.Projection"},
		"ProjectorCoordinator.Handle":               {".angzarr.EventBook", ".google.protobuf.Empty"},
		"ProjectorCoordinator.HandleSync":           {".angzarr.EventBook", ".angzarr.Projection"},
		"Saga.Handle":                               {".angzarr.EventBook", ".google.protobuf.Empty"},
		"Saga.HandleSync":                           {".angzarr.EventBook", ".angzarr.SagaResponse"},
		"SagaCoordinator.Handle":                    {".angzarr.EventBook", ".google.protobuf.Empty"},
		"SagaCoordinator.HandleSync":                {".angzarr.EventBook", ".angzarr.SagaResponse"},
		"CommandGateway.ExecuteStream":              {".angzarr.CommandBook", "stream .angzarr.EventBook"},
		"CommandGateway.ExecuteStreamResponseCount": {".angzarr.ExecuteStreamCountRequest", "stream .angzarr.EventBook"},
		"CommandGateway.ExecuteStreamResponseTime":  {".angzarr.ExecuteStreamTimeRequest", "stream .angzarr.EventBook"},
		"EventQuery.GetEvents":                      {".angzarr.Query", "stream .angzarr.EventBook"},
		"EventQuery.Synchronize":                    {"stream .angzarr.Query", "stream .angzarr.EventBook"},
		"EventQuery.GetAggregateRoots":              {".google.protobuf.Empty", "stream .angzarr.AggregateRoot"},
		"EventStore.Load":                           {".angzarr.LoadRequest", ".angzarr.LoadResponse"},
		"EventStore.ReadLog":                        {".angzarr.ReadLogRequest", ".angzarr.ReadLogResponse"},
		"EventStore.ListRoots":                      {".angzarr.ListRootsRequest", "stream .angzarr.AggregateRoot"},
		"FanoutAdmin.ListDeadLetters":               {".angzarr.ListDeadLettersRequest", ".angzarr.ListDeadLettersResponse"},
		"FanoutAdmin.ReplayDeadLetters":             {".angzarr.ReplayDeadLettersRequest", ".angzarr.ReplayDeadLettersResponse"},
		"FanoutAdmin.DiscardDeadLetters":            {".angzarr.DiscardDeadLettersRequest", ".angzarr.DiscardDeadLettersResponse"},
		"FanoutAdmin.ResetSubscriber":               {".angzarr.ResetSubscriberRequest", ".angzarr.SubscriberProgress"},
		"FanoutAdmin.GetSubscriberProgress":         {".angzarr.GetSubscriberProgressRequest", ".angzarr.SubscriberProgress"},
		"EventStore.Append":                         {".angzarr.AppendRequest", ".angzarr.AppendResponse"},
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g, ok := got[name]
		if !ok {
			t.Errorf("missing RPC %s", name)
			continue
		}
		if g != want[name] {
			t.Errorf("%s: got (%s) returns (%s), want (%s) returns (%s)", name, g.in, g.out, want[name].in, want[name].out)
		}
	}
}

// TestEveryMessageAndFieldIsDocumented enforces the contract rule that every
// message, field, enum value, service and RPC of proto/angzarr has a comment.
func TestEveryMessageAndFieldIsDocumented(t *testing.T) {
	files, _ := filepath.Glob("angzarr/*.proto")
	out := filepath.Join(t.TempDir(), "src.pb")
	args := append([]string{"-I", ".", "--include_source_info", "--descriptor_set_out=" + out}, files...)
	if b, err := exec.Command("protoc", args...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	for _, f := range set.GetFile() {
		documented := map[string]bool{}
		for _, loc := range f.GetSourceCodeInfo().GetLocation() {
			if loc.GetLeadingComments() != "" || loc.GetTrailingComments() != "" {
				documented[pathKey(loc.GetPath())] = true
			}
		}
		check := func(path []int32, what string) {
			if !documented[pathKey(path)] {
				t.Errorf("%s: %s has no comment", f.GetName(), what)
			}
		}
		// Descriptor field numbers: message_type=4, field=2, nested oneof_decl=8,
		// enum_type=5, value=2, service=6, method=2.
		for i, m := range f.GetMessageType() {
			mp := []int32{4, int32(i)}
			check(mp, "message "+m.GetName())
			for j, fd := range m.GetField() {
				check(append(append([]int32{}, mp...), 2, int32(j)), m.GetName()+"."+fd.GetName())
			}
		}
		for i, e := range f.GetEnumType() {
			ep := []int32{5, int32(i)}
			check(ep, "enum "+e.GetName())
			for j, v := range e.GetValue() {
				check(append(append([]int32{}, ep...), 2, int32(j)), e.GetName()+"."+v.GetName())
			}
		}
		for i, s := range f.GetService() {
			sp := []int32{6, int32(i)}
			check(sp, "service "+s.GetName())
			for j, m := range s.GetMethod() {
				check(append(append([]int32{}, sp...), 2, int32(j)), s.GetName()+"."+m.GetName())
			}
		}
	}
}

func pathKey(p []int32) string {
	b := make([]byte, 0, len(p)*3)
	for _, v := range p {
		b = append(b, byte(v>>8), byte(v), ',')
	}
	return string(b)
}
