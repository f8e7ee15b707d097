package sdk

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// messageName is the full protobuf name a type URL refers to: what follows
// its last '/' ("type.googleapis.com/examples.CreateCart" -> examples.CreateCart),
// so any URL prefix routes the same.
func messageName(typeURL string) protoreflect.FullName {
	return protoreflect.FullName(typeURL[strings.LastIndex(typeURL, "/")+1:])
}

// nameOf is the full protobuf name of the message type M.
func nameOf[M proto.Message]() protoreflect.FullName {
	var zero M
	return zero.ProtoReflect().Descriptor().FullName()
}

// newOf returns a new, empty M.
func newOf[M proto.Message]() M {
	var zero M
	return zero.ProtoReflect().Type().New().Interface().(M)
}

// unpack decodes an Any known to hold an M.
func unpack[M proto.Message](a *anypb.Any) (M, error) {
	m := newOf[M]()
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return m, Invalid("cannot decode %s: %v", messageName(a.GetTypeUrl()), err)
	}
	return m, nil
}

// TypeURL is the type URL a message packs under
// ("type.googleapis.com/" + its full name).
func TypeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}
