package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Fingerprint is the SHA-256 (hex) of a message type's shape: its
// descriptor and those of every message and enum its fields reach, in a
// deterministic encoding without comments or source positions (which
// descriptors do not carry below the file). Equal fingerprints mean the
// same shape; a different one means a change that Check then judges.
func Fingerprint(md protoreflect.MessageDescriptor) string {
	seen := map[protoreflect.FullName]proto.Message{}
	var visit func(protoreflect.MessageDescriptor)
	visit = func(m protoreflect.MessageDescriptor) {
		if _, ok := seen[m.FullName()]; ok {
			return
		}
		seen[m.FullName()] = protodesc.ToDescriptorProto(m)
		fields := m.Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			if f.Message() != nil {
				visit(f.Message())
			}
			if e := f.Enum(); e != nil {
				if _, ok := seen[e.FullName()]; !ok {
					seen[e.FullName()] = protodesc.ToEnumDescriptorProto(e)
				}
			}
		}
	}
	visit(md)
	names := make([]protoreflect.FullName, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, n := range names {
		b, err := opts.Marshal(seen[n])
		if err != nil {
			panic(err) // descriptor protos built from valid descriptors always marshal
		}
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SetFingerprint is the SHA-256 (hex) of a descriptor set's files, sorted
// by name, without their source code info (comments), deterministic.
func SetFingerprint(set *descriptorpb.FileDescriptorSet) string {
	files := make([]*descriptorpb.FileDescriptorProto, 0, len(set.GetFile()))
	for _, f := range set.GetFile() {
		c := proto.CloneOf(f)
		c.SourceCodeInfo = nil
		files = append(files, c)
	}
	slices.SortFunc(files, func(a, b *descriptorpb.FileDescriptorProto) int {
		switch {
		case a.GetName() < b.GetName():
			return -1
		case a.GetName() > b.GetName():
			return 1
		}
		return 0
	})
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		panic(err) // descriptor protos always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// MessageName is the full message name a type URL names: what follows its
// last '/' ("type.googleapis.com/examples.ProductListed" ->
// examples.ProductListed). Stored events name their type this way.
func MessageName(typeURL string) protoreflect.FullName {
	return protoreflect.FullName(typeURL[strings.LastIndex(typeURL, "/")+1:])
}
