package client

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	_ "github.com/angzarr-mesh/angzarr/proto/examples" // the example shop's messages
	"github.com/angzarr-mesh/angzarr/schema"
)

// Types resolves message types: those of a descriptor set first, then
// every type registered in the binary. It is a protojson resolver.
type Types struct {
	local *protoregistry.Types // from the descriptor set; nil without one
}

// LoadTypes returns the types of the binary plus those of the descriptor
// set file ("" for none): a FileDescriptorSet as protoc writes it with
// --include_imports --descriptor_set_out.
func LoadTypes(descriptorSet string) (*Types, error) {
	if descriptorSet == "" {
		return &Types{}, nil
	}
	b, err := os.ReadFile(descriptorSet)
	if err != nil {
		return nil, fmt.Errorf("descriptor set: %w", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("descriptor set %s: not a FileDescriptorSet: %w", descriptorSet, err)
	}
	files, err := schema.Files(&set, protoregistry.GlobalFiles)
	if err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w (build it with protoc --include_imports)", descriptorSet, err)
	}
	local := &protoregistry.Types{}
	var regErr error
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		regErr = registerMessages(local, fd.Messages())
		return regErr == nil
	})
	if regErr != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", descriptorSet, regErr)
	}
	return &Types{local: local}, nil
}

func registerMessages(r *protoregistry.Types, ms protoreflect.MessageDescriptors) error {
	for i := range ms.Len() {
		md := ms.Get(i)
		if md.IsMapEntry() {
			continue
		}
		if err := r.RegisterMessage(dynamicpb.NewMessageType(md)); err != nil {
			return err
		}
		if err := registerMessages(r, md.Messages()); err != nil {
			return err
		}
	}
	return nil
}

// Message resolves a message type by its full name ("examples.CreateOrder")
// or, when unambiguous, by its short name ("CreateOrder").
func (t *Types) Message(name string) (protoreflect.MessageType, error) {
	name = strings.TrimPrefix(name, "type.googleapis.com/")
	if mt, err := t.FindMessageByName(protoreflect.FullName(name)); err == nil {
		return mt, nil
	}
	if strings.Contains(name, ".") {
		return nil, fmt.Errorf("unknown message type %q: not registered in this binary (the example shop's are) nor in --descriptor-set", name)
	}
	var found []protoreflect.MessageType
	seen := map[protoreflect.FullName]bool{}
	visit := func(mt protoreflect.MessageType) bool {
		d := mt.Descriptor()
		if string(d.Name()) == name && !seen[d.FullName()] {
			seen[d.FullName()] = true
			found = append(found, mt)
		}
		return true
	}
	if t.local != nil {
		t.local.RangeMessages(visit)
	}
	protoregistry.GlobalTypes.RangeMessages(visit)
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("unknown message type %q: give its full name (e.g. examples.CreateCustomer), registered in this binary or in --descriptor-set", name)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, mt := range found {
		names[i] = string(mt.Descriptor().FullName())
	}
	slices.Sort(names)
	return nil, fmt.Errorf("message type %q is ambiguous: %s", name, strings.Join(names, ", "))
}

// FindMessageByName implements protoregistry.MessageTypeResolver.
func (t *Types) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if t.local != nil {
		if mt, err := t.local.FindMessageByName(name); err == nil {
			return mt, nil
		}
	}
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

// FindMessageByURL implements protoregistry.MessageTypeResolver.
func (t *Types) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if t.local != nil {
		if mt, err := t.local.FindMessageByURL(url); err == nil {
			return mt, nil
		}
	}
	return protoregistry.GlobalTypes.FindMessageByURL(url)
}

// FindExtensionByName implements protoregistry.ExtensionTypeResolver.
func (t *Types) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(field)
}

// FindExtensionByNumber implements protoregistry.ExtensionTypeResolver.
func (t *Types) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
}
