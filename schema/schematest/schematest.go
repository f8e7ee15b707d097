// Package schematest compiles .proto sources for tests, as protoc
// --include_imports --descriptor_set_out would (with bufbuild/protocompile,
// in memory: no protoc process, no files).
package schematest

import (
	"context"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Compile compiles the source of one .proto file named name (the
// well-known types importable) and returns its descriptor set; it fails
// the test on a compile error.
func Compile(tb testing.TB, name, src string) *descriptorpb.FileDescriptorSet {
	tb.Helper()
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{name: src}),
	})}
	res, err := c.Compile(context.Background(), name)
	if err != nil {
		tb.Fatalf("compile %s:\n%s\n%v", name, src, err)
	}
	return &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{protodesc.ToFileDescriptorProto(res[0])}}
}

// Marshal is Compile's set in its wire form (a .binpb file's bytes).
func Marshal(tb testing.TB, name, src string) []byte {
	tb.Helper()
	b, err := proto.Marshal(Compile(tb, name, src))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
