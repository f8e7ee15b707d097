package schema

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Level is how much of a stored event's encodings a change must keep.
type Level int

const (
	// WireJSON keeps the binary form and the JSON form (field and enum
	// value names). The default: stored projections and the CLI read JSON.
	WireJSON Level = iota
	// Wire keeps the binary form only.
	Wire
)

// ParseLevel reads "wire_json" or "wire" (as buf names the categories,
// case-insensitive).
func ParseLevel(s string) (Level, error) {
	switch strings.ToUpper(s) {
	case "WIRE_JSON", "":
		return WireJSON, nil
	case "WIRE":
		return Wire, nil
	}
	return 0, fmt.Errorf("schema level %q: want wire_json or wire", s)
}

func (l Level) String() string {
	if l == Wire {
		return "WIRE"
	}
	return "WIRE_JSON"
}

// Rule names a kind of breaking change. The names are buf's where buf has
// the rule.
type Rule string

// The rules Check applies. The comment says at which levels.
const (
	// A stored event type is gone from the new descriptors: renamed, or
	// moved to another package; its type URL is in every stored event.
	// Both levels.
	MessageNoDelete Rule = "MESSAGE_NO_DELETE"
	// A field was removed and its number not reserved, so a later field may
	// reuse it with another meaning. Both levels.
	FieldNoDeleteUnlessNumberReserved Rule = "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED"
	// A field was removed and its name not reserved (JSON reads by name).
	// WIRE_JSON.
	FieldNoDeleteUnlessNameReserved Rule = "FIELD_NO_DELETE_UNLESS_NAME_RESERVED"
	// A field number now has a type its stored values do not decode as.
	// WIRE.
	FieldWireCompatibleType Rule = "FIELD_WIRE_COMPATIBLE_TYPE"
	// As FieldWireCompatibleType, for binary and JSON. WIRE_JSON.
	FieldWireJSONCompatibleType Rule = "FIELD_WIRE_JSON_COMPATIBLE_TYPE"
	// A field became repeated, a map, or stopped being one. WIRE.
	FieldWireCompatibleCardinality Rule = "FIELD_WIRE_COMPATIBLE_CARDINALITY"
	// As FieldWireCompatibleCardinality, for binary and JSON. WIRE_JSON.
	FieldWireJSONCompatibleCardinality Rule = "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY"
	// A field moved into, out of, or between oneofs: stored events that set
	// it and a former sibling decode differently. Both levels.
	FieldSameOneof Rule = "FIELD_SAME_ONEOF"
	// A field number now has another name. WIRE_JSON.
	FieldSameName Rule = "FIELD_SAME_NAME"
	// A field's JSON name changed. WIRE_JSON.
	FieldSameJSONName Rule = "FIELD_SAME_JSON_NAME"
	// An enum value was removed and its number not reserved. Both levels.
	EnumValueNoDeleteUnlessNumberReserved Rule = "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED"
	// An enum value was removed and its name not reserved. WIRE_JSON.
	EnumValueNoDeleteUnlessNameReserved Rule = "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED"
	// An enum number now has another name. WIRE_JSON.
	EnumValueSameName Rule = "ENUM_VALUE_SAME_NAME"
)

// A Change is one breaking change found for a stored event type.
type Change struct {
	Rule Rule
	// Type is the stored event type's full name (its type URL's last part).
	Type protoreflect.FullName
	// Path locates the change inside Type: field names from the event down
	// ("address.zip"), empty for the type itself. An enum value's path ends
	// with the value's name.
	Path string
	// Number is the field or enum value number, 0 for the type itself.
	Number int32
	// Detail says what changed, in words.
	Detail string
}

func (c Change) String() string {
	where := string(c.Type)
	if c.Path != "" {
		where += "." + c.Path
	}
	if c.Number != 0 {
		where += fmt.Sprintf(" (#%d)", c.Number)
	}
	return fmt.Sprintf("%s: %s: %s", c.Rule, where, c.Detail)
}

// Resolver finds descriptors by full name: *protoregistry.Files is one.
type Resolver interface {
	FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
}

// Check reports every breaking change between old and new for the stored
// event types named, following each field into the messages and enums it
// reaches. A type named that old does not know is an error (the old
// descriptors must describe what was stored). The changes come in the order
// of types, then of field numbers.
func Check(old, new Resolver, types []protoreflect.FullName, level Level) ([]Change, error) {
	var changes []Change
	for _, name := range types {
		od, err := old.FindDescriptorByName(name)
		if err != nil {
			return nil, fmt.Errorf("stored type %s: not in the old descriptors: %w", name, err)
		}
		om, ok := od.(protoreflect.MessageDescriptor)
		if !ok {
			return nil, fmt.Errorf("stored type %s: not a message", name)
		}
		c := checker{root: name, level: level, seen: map[[2]protoreflect.FullName]bool{}}
		nd, err := new.FindDescriptorByName(name)
		nm, isMsg := nd.(protoreflect.MessageDescriptor)
		if err != nil || !isMsg {
			c.add(MessageNoDelete, "", 0, "stored events name this type in their type URL; the new descriptors have no message %s%s: keep it (and add new types beside it), or declare an upcaster", name, movedHint(new, om))
			changes = append(changes, c.changes...)
			continue
		}
		c.message(om, nm, "")
		changes = append(changes, c.changes...)
	}
	return changes, nil
}

// movedHint names messages of the same short name elsewhere in new, when new
// can list them (a *protoregistry.Files can).
func movedHint(new Resolver, om protoreflect.MessageDescriptor) string {
	type ranger interface {
		RangeFiles(func(protoreflect.FileDescriptor) bool)
	}
	r, ok := new.(ranger)
	if !ok {
		return ""
	}
	var found []string
	r.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		walkMessages(fd.Messages(), func(m protoreflect.MessageDescriptor) {
			if m.Name() == om.Name() {
				found = append(found, string(m.FullName()))
			}
		})
		return true
	})
	if len(found) == 0 {
		return ""
	}
	slices.Sort(found)
	return " (moved to " + strings.Join(found, ", ") + "?)"
}

func walkMessages(ms protoreflect.MessageDescriptors, f func(protoreflect.MessageDescriptor)) {
	for i := range ms.Len() {
		m := ms.Get(i)
		if m.IsMapEntry() {
			continue
		}
		f(m)
		walkMessages(m.Messages(), f)
	}
}

type checker struct {
	root    protoreflect.FullName
	level   Level
	seen    map[[2]protoreflect.FullName]bool // message/enum pairs compared
	changes []Change
}

func (c *checker) add(rule Rule, path string, number int32, format string, args ...any) {
	c.changes = append(c.changes, Change{Rule: rule, Type: c.root, Path: path, Number: number, Detail: fmt.Sprintf(format, args...)})
}

func (c *checker) json() bool { return c.level == WireJSON }

// pick returns the rule of the level in force, for rules buf splits by level.
func (c *checker) pick(wire, wireJSON Rule) Rule {
	if c.json() {
		return wireJSON
	}
	return wire
}

func join(path string, name protoreflect.Name) string {
	if path == "" {
		return string(name)
	}
	return path + "." + string(name)
}

// message compares om (as stored) with nm (as it will be read), field by
// field number.
func (c *checker) message(om, nm protoreflect.MessageDescriptor, path string) {
	key := [2]protoreflect.FullName{om.FullName(), nm.FullName()}
	if c.seen[key] {
		return // recursive types, or a type reached twice
	}
	c.seen[key] = true
	fields := om.Fields()
	for i := range fields.Len() {
		of := fields.Get(i)
		c.field(of, nm.Fields().ByNumber(of.Number()), nm, join(path, of.Name()))
	}
}

func (c *checker) field(of, nf protoreflect.FieldDescriptor, nm protoreflect.MessageDescriptor, path string) {
	num := int32(of.Number())
	if nf == nil {
		if !nm.ReservedRanges().Has(of.Number()) {
			c.add(FieldNoDeleteUnlessNumberReserved, path, num, "field %q (%s) was removed without `reserved %d;`: a later field may reuse the number and misread stored values", of.Name(), kindName(of), num)
		}
		if c.json() && !nm.ReservedNames().Has(of.Name()) {
			c.add(FieldNoDeleteUnlessNameReserved, path, num, "field %q was removed without `reserved %q;`: stored JSON names it", of.Name(), of.Name())
		}
		return
	}
	if c.json() && nf.Name() != of.Name() {
		c.add(FieldSameName, path, num, "number %d was %q, now %q: stored JSON uses the name", num, of.Name(), nf.Name())
	}
	if c.json() && nf.Name() == of.Name() && nf.JSONName() != of.JSONName() {
		c.add(FieldSameJSONName, path, num, "JSON name was %q, now %q", of.JSONName(), nf.JSONName())
	}
	if oneofName(of) != oneofName(nf) {
		c.add(FieldSameOneof, path, num, "was %s, now %s", oneofWords(of), oneofWords(nf))
	}
	if of.IsList() != nf.IsList() || of.IsMap() != nf.IsMap() {
		c.add(c.pick(FieldWireCompatibleCardinality, FieldWireJSONCompatibleCardinality), path, num, "was %s, now %s", cardinality(of), cardinality(nf))
		return
	}
	if of.IsMap() {
		c.field(of.MapKey(), nf.MapKey(), nf.Message(), path+"[key]")
		c.field(of.MapValue(), nf.MapValue(), nf.Message(), path+"[value]")
		return
	}
	if !c.compatibleKind(of.Kind(), nf.Kind()) {
		c.add(c.pick(FieldWireCompatibleType, FieldWireJSONCompatibleType), path, num, "was %s, now %s: stored values do not decode as the new type", kindName(of), kindName(nf))
		return
	}
	switch of.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		c.message(of.Message(), nf.Message(), path)
	case protoreflect.EnumKind:
		if nf.Kind() == protoreflect.EnumKind {
			c.enum(of.Enum(), nf.Enum(), path)
		}
	}
}

// enum compares the values of an enum a stored field uses.
func (c *checker) enum(oe, ne protoreflect.EnumDescriptor, path string) {
	key := [2]protoreflect.FullName{oe.FullName(), ne.FullName()}
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	values := oe.Values()
	for i := range values.Len() {
		ov := values.Get(i)
		num, vpath := int32(ov.Number()), join(path, ov.Name())
		nv := ne.Values().ByNumber(ov.Number())
		if nv == nil {
			if !ne.ReservedRanges().Has(ov.Number()) {
				c.add(EnumValueNoDeleteUnlessNumberReserved, vpath, num, "enum value %s = %d was removed without reserving %d", ov.Name(), num, num)
			}
			if c.json() && !ne.ReservedNames().Has(ov.Name()) {
				c.add(EnumValueNoDeleteUnlessNameReserved, vpath, num, "enum value %s was removed without reserving its name: stored JSON names it", ov.Name())
			}
			continue
		}
		if c.json() && nv.Name() != ov.Name() && ne.Values().ByName(ov.Name()) == nil {
			c.add(EnumValueSameName, vpath, num, "value %d was %s, now %s: stored JSON uses the name", num, ov.Name(), nv.Name())
		}
	}
}

// Kinds whose stored bytes decode as each other, from the protobuf
// language guide ("Updating a message type"): the varint family, the
// zigzag pair, the two fixed widths, and a message under another name
// (compared field by field). WIRE_JSON keeps only what also reads the same
// JSON: 32-bit and 64-bit integers are separate (64-bit ones are JSON
// strings), and bool leaves the varint family.
var (
	wireGroup = map[protoreflect.Kind]int{
		protoreflect.Int32Kind: 1, protoreflect.Int64Kind: 1, protoreflect.Uint32Kind: 1, protoreflect.Uint64Kind: 1, protoreflect.BoolKind: 1,
		protoreflect.Sint32Kind: 2, protoreflect.Sint64Kind: 2,
		protoreflect.Fixed32Kind: 3, protoreflect.Sfixed32Kind: 3,
		protoreflect.Fixed64Kind: 4, protoreflect.Sfixed64Kind: 4,
	}
	wireJSONGroup = map[protoreflect.Kind]int{
		protoreflect.Int32Kind: 1, protoreflect.Uint32Kind: 1,
		protoreflect.Int64Kind: 2, protoreflect.Uint64Kind: 2,
		protoreflect.Fixed32Kind: 3, protoreflect.Sfixed32Kind: 3,
		protoreflect.Fixed64Kind: 4, protoreflect.Sfixed64Kind: 4,
	}
)

func (c *checker) compatibleKind(o, n protoreflect.Kind) bool {
	if o == n {
		return true
	}
	if !c.json() && o == protoreflect.StringKind && n == protoreflect.BytesKind {
		return true // every stored string is valid bytes; not the reverse
	}
	groups := wireGroup
	if c.json() {
		groups = wireJSONGroup
	}
	og, ok := groups[o]
	return ok && og == groups[n]
}

func kindName(f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(f.Message().FullName())
	case protoreflect.EnumKind:
		return "enum " + string(f.Enum().FullName())
	}
	return f.Kind().String()
}

func cardinality(f protoreflect.FieldDescriptor) string {
	switch {
	case f.IsMap():
		return "a map"
	case f.IsList():
		return "repeated " + kindName(f)
	}
	return "singular " + kindName(f)
}

// oneofName is the real oneof a field is in ("" for none; proto3 optional's
// synthetic oneof does not count).
func oneofName(f protoreflect.FieldDescriptor) protoreflect.Name {
	if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
		return o.Name()
	}
	return ""
}

func oneofWords(f protoreflect.FieldDescriptor) string {
	if n := oneofName(f); n != "" {
		return "in oneof " + string(n)
	}
	return "not in a oneof"
}
