package schema_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/angzarr-mesh/angzarr/schema"
	"github.com/angzarr-mesh/angzarr/schema/schematest"
)

// compile builds one .proto source (file "ev.proto", package t) the way
// protoc would, and loads it back through schema.Files as a descriptor set
// file would be.
func compile(t *testing.T, src string) *protoregistry.Files {
	t.Helper()
	files, err := schema.Files(schematest.Compile(t, "ev.proto", src), schema.WellKnown)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

const header = "syntax = \"proto3\";\npackage t;\n"

// TestRules holds a before/after .proto for every rule, and compatible
// changes that must pass. Stored type: t.Ev.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		level    schema.Level
		want     []schema.Rule // nil: compatible
		path     string        // of the first change, when want is set
	}{
		{name: "unchanged", old: `message Ev { string id = 1; int32 points = 2; }`, new: `message Ev { string id = 1; int32 points = 2; }`},
		{name: "new optional field", old: `message Ev { string id = 1; }`, new: `message Ev { string id = 1; optional string note = 2; }`},
		{name: "new event type", old: `message Ev { string id = 1; }`, new: `message Ev { string id = 1; } message Ev2 { string id = 1; }`},
		{name: "removed field reserved", old: `message Ev { string id = 1; int32 points = 2; }`, new: `message Ev { string id = 1; reserved 2; reserved "points"; }`},
		{name: "int32 to uint32 is wire and JSON compatible", old: `message Ev { int32 n = 1; }`, new: `message Ev { uint32 n = 1; }`},
		{name: "message field renamed type, same shape", old: `message A { string x = 1; } message Ev { A a = 1; }`, new: `message B { string x = 1; } message Ev { B a = 1; }`},
		{name: "enum value added", old: `enum E { E_UNSPECIFIED = 0; E_A = 1; } message Ev { E e = 1; }`, new: `enum E { E_UNSPECIFIED = 0; E_A = 1; E_B = 2; } message Ev { E e = 1; }`},
		{name: "enum value alias keeps old name", old: `enum E { E_UNSPECIFIED = 0; E_A = 1; } message Ev { E e = 1; }`, new: `enum E { option allow_alias = true; E_UNSPECIFIED = 0; E_NEW = 1; E_A = 1; } message Ev { E e = 1; }`},
		{name: "recursive message", old: `message Ev { string id = 1; Ev parent = 2; }`, new: `message Ev { string id = 1; Ev parent = 2; }`},

		{name: "event renamed", old: `message Ev { string id = 1; }`, new: `message Event { string id = 1; }`, want: []schema.Rule{schema.MessageNoDelete}},
		{name: "removed field not reserved", old: `message Ev { string id = 1; int32 points = 2; }`, new: `message Ev { string id = 1; }`,
			want: []schema.Rule{schema.FieldNoDeleteUnlessNumberReserved, schema.FieldNoDeleteUnlessNameReserved}, path: "points"},
		{name: "removed field, number reserved, wire only", old: `message Ev { string id = 1; int32 points = 2; }`, new: `message Ev { string id = 1; reserved 2; }`, level: schema.Wire},
		{name: "removed field, number reserved, name not", old: `message Ev { string id = 1; int32 points = 2; }`, new: `message Ev { string id = 1; reserved 2; }`,
			want: []schema.Rule{schema.FieldNoDeleteUnlessNameReserved}},
		{name: "number reused with another type", old: `message Ev { string id = 1; int32 points = 2; }`, new: `message Ev { string id = 1; string note = 2; }`,
			want: []schema.Rule{schema.FieldSameName, schema.FieldWireJSONCompatibleType}, path: "points"},
		{name: "type changed, wire", old: `message Ev { int32 points = 1; }`, new: `message Ev { string points = 1; }`, level: schema.Wire,
			want: []schema.Rule{schema.FieldWireCompatibleType}},
		{name: "int32 to int64: wire yes", old: `message Ev { int32 n = 1; }`, new: `message Ev { int64 n = 1; }`, level: schema.Wire},
		{name: "int32 to int64: JSON no", old: `message Ev { int32 n = 1; }`, new: `message Ev { int64 n = 1; }`,
			want: []schema.Rule{schema.FieldWireJSONCompatibleType}},
		{name: "string to bytes: wire yes", old: `message Ev { string s = 1; }`, new: `message Ev { bytes s = 1; }`, level: schema.Wire},
		{name: "bytes to string: wire no", old: `message Ev { bytes s = 1; }`, new: `message Ev { string s = 1; }`, level: schema.Wire,
			want: []schema.Rule{schema.FieldWireCompatibleType}},
		{name: "sint32 to int32", old: `message Ev { sint32 n = 1; }`, new: `message Ev { int32 n = 1; }`, level: schema.Wire,
			want: []schema.Rule{schema.FieldWireCompatibleType}},
		{name: "nested field type changed", old: `message Addr { string zip = 1; } message Ev { Addr address = 3; }`, new: `message Addr { int64 zip = 1; } message Ev { Addr address = 3; }`,
			want: []schema.Rule{schema.FieldWireJSONCompatibleType}, path: "address.zip"},
		{name: "renamed field", old: `message Ev { int32 points = 1; }`, new: `message Ev { int32 score = 1; }`,
			want: []schema.Rule{schema.FieldSameName}},
		{name: "renamed field, wire", old: `message Ev { int32 points = 1; }`, new: `message Ev { int32 score = 1; }`, level: schema.Wire},
		{name: "JSON name changed", old: `message Ev { int32 points = 1; }`, new: `message Ev { int32 points = 1 [json_name = "pts"]; }`,
			want: []schema.Rule{schema.FieldSameJSONName}},
		{name: "became repeated", old: `message Ev { string tag = 1; }`, new: `message Ev { repeated string tag = 1; }`,
			want: []schema.Rule{schema.FieldWireJSONCompatibleCardinality}},
		{name: "map value type changed", old: `message Ev { map<string, int32> qty = 1; }`, new: `message Ev { map<string, string> qty = 1; }`,
			want: []schema.Rule{schema.FieldWireJSONCompatibleType}, path: "qty[value]"},
		{name: "moved into a oneof", old: `message Ev { string a = 1; string b = 2; }`, new: `message Ev { oneof x { string a = 1; string b = 2; } }`,
			want: []schema.Rule{schema.FieldSameOneof, schema.FieldSameOneof}},
		{name: "enum value removed", old: `enum E { E_UNSPECIFIED = 0; E_A = 1; } message Ev { E e = 1; }`, new: `enum E { E_UNSPECIFIED = 0; } message Ev { E e = 1; }`,
			want: []schema.Rule{schema.EnumValueNoDeleteUnlessNumberReserved, schema.EnumValueNoDeleteUnlessNameReserved}, path: "e.E_A"},
		{name: "enum value removed, reserved", old: `enum E { E_UNSPECIFIED = 0; E_A = 1; } message Ev { E e = 1; }`, new: `enum E { E_UNSPECIFIED = 0; reserved 1; reserved "E_A"; } message Ev { E e = 1; }`},
		{name: "enum value renamed", old: `enum E { E_UNSPECIFIED = 0; E_A = 1; } message Ev { E e = 1; }`, new: `enum E { E_UNSPECIFIED = 0; E_B = 1; } message Ev { E e = 1; }`,
			want: []schema.Rule{schema.EnumValueSameName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changes, err := schema.Check(compile(t, header+tc.old), compile(t, header+tc.new), []protoreflect.FullName{"t.Ev"}, tc.level)
			if err != nil {
				t.Fatal(err)
			}
			var got []schema.Rule
			for _, c := range changes {
				got = append(got, c.Rule)
				if c.Type != "t.Ev" || c.Detail == "" {
					t.Errorf("change %+v: want type t.Ev and a detail", c)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("rules = %v, want %v\n%v", got, tc.want, changes)
			}
			if tc.path != "" && changes[0].Path != tc.path {
				t.Errorf("path = %q, want %q", changes[0].Path, tc.path)
			}
		})
	}
}

func TestMovedTypeIsNamed(t *testing.T) {
	old := compile(t, header+`message Ev { string id = 1; }`)
	moved := compile(t, "syntax = \"proto3\";\npackage t.v2;\nmessage Ev { string id = 1; }")
	changes, err := schema.Check(old, moved, []protoreflect.FullName{"t.Ev"}, schema.WireJSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.Contains(changes[0].Detail, "moved to t.v2.Ev?") {
		t.Fatalf("changes = %v, want one naming t.v2.Ev", changes)
	}
}

func TestUnknownStoredTypeIsAnError(t *testing.T) {
	files := compile(t, header+`message Ev { string id = 1; }`)
	if _, err := schema.Check(files, files, []protoreflect.FullName{"t.Nope"}, schema.WireJSON); err == nil || !strings.Contains(err.Error(), "t.Nope") {
		t.Fatalf("err = %v, want one naming t.Nope", err)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]schema.Level{"": schema.WireJSON, "wire_json": schema.WireJSON, "WIRE": schema.Wire} {
		if got, err := schema.ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := schema.ParseLevel("file"); err == nil {
		t.Error("ParseLevel(file) took a level Check does not apply")
	}
}

func TestFingerprint(t *testing.T) {
	fp := func(src string) string {
		t.Helper()
		d, err := compile(t, header+src).FindDescriptorByName("t.Ev")
		if err != nil {
			t.Fatal(err)
		}
		return schema.Fingerprint(d.(protoreflect.MessageDescriptor))
	}
	base := fp(`message A { string x = 1; } message Ev { A a = 1; int32 n = 2; }`)
	for _, tc := range []struct {
		name, src string
		same      bool
	}{
		{"comments and an unrelated message", "// a comment\nmessage A { string x = 1; } message Ev { A a = 1; /* n */ int32 n = 2; } message Other { bool b = 1; }", true},
		{"a field added", `message A { string x = 1; } message Ev { A a = 1; int32 n = 2; string s = 3; }`, false},
		{"a reached message changed", `message A { string x = 1; int64 y = 2; } message Ev { A a = 1; int32 n = 2; }`, false},
		{"a field renamed", `message A { string x = 1; } message Ev { A a = 1; int32 m = 2; }`, false},
	} {
		if got := fp(tc.src) == base; got != tc.same {
			t.Errorf("%s: same fingerprint = %v, want %v", tc.name, got, tc.same)
		}
	}
}
