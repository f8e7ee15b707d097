package wire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed reports bytes that are not a valid encoding of the message.
var ErrMalformed = errors.New("malformed protobuf message")

// field is one decoded field: its number, wire type, the value (varint or
// the bytes of a length-delimited field) and its raw encoding (tag included).
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
	raw []byte
}

// errWrongType marks a known field number with an unexpected wire type;
// like protobuf, walk then keeps the field as an unknown one.
var errWrongType = errors.New("wrong wire type")

// walk calls fn for every field of b, in order. Fields fn refuses with
// errWrongType go to *unknown (dropped when unknown is nil).
func walk(what string, b []byte, unknown *[]byte, fn func(f field) error) error {
	for len(b) > 0 {
		// One-byte tags, varints and lengths (nearly all of them) are
		// read inline; anything else, malformed input included, goes
		// through protowire.
		var num protowire.Number
		var typ protowire.Type
		n := 1
		if c := b[0]; c < 0x80 && c>>3 != 0 {
			num, typ = protowire.Number(c>>3), protowire.Type(c&7)
		} else if num, typ, n = protowire.ConsumeTag(b); n < 0 {
			return fmt.Errorf("%w: %s: bad tag: %v", ErrMalformed, what, protowire.ParseError(n))
		}
		f := field{num: num, typ: typ}
		var m int
		switch typ {
		case protowire.VarintType:
			if len(b) > n && b[n] < 0x80 {
				f.v, m = uint64(b[n]), 1
			} else {
				f.v, m = protowire.ConsumeVarint(b[n:])
			}
		case protowire.BytesType:
			if len(b) > n && b[n] < 0x80 && int(b[n]) <= len(b)-n-1 {
				l := int(b[n])
				f.b, m = b[n+1:n+1+l], 1+l
			} else {
				f.b, m = protowire.ConsumeBytes(b[n:])
			}
		default:
			m = protowire.ConsumeFieldValue(num, typ, b[n:])
		}
		if m < 0 {
			return fmt.Errorf("%w: %s: field %d: %v", ErrMalformed, what, num, protowire.ParseError(m))
		}
		f.raw = b[:n+m]
		if err := fn(f); err == errWrongType {
			if unknown != nil {
				*unknown = append(*unknown, f.raw...)
			}
		} else if err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// wrongType reports a known field with an unexpected wire type.
func wrongType(string, field) error { return errWrongType }

// anyBytes returns a length-delimited field holding a google.protobuf.Any,
// checked.
func anyBytes(what string, f field) ([]byte, error) {
	b, err := bytesOf(what, f)
	if err != nil {
		return nil, err
	}
	if err := checkAny(what, b); err != nil {
		return nil, err
	}
	return b, nil
}

// str returns a length-delimited field as a string, checking UTF-8 as
// proto3 requires.
func str(what string, f field) (string, error) {
	if f.typ != protowire.BytesType {
		return "", wrongType(what, f)
	}
	if !utf8.Valid(f.b) {
		return "", notUTF8(what, f)
	}
	return string(f.b), nil
}

// checkStr is str without the string.
func checkStr(what string, f field) error {
	if f.typ != protowire.BytesType {
		return wrongType(what, f)
	}
	if !utf8.Valid(f.b) {
		return notUTF8(what, f)
	}
	return nil
}

func notUTF8(what string, f field) error {
	return fmt.Errorf("%w: %s: field %d is not valid UTF-8", ErrMalformed, what, f.num)
}

// bytesOf returns a length-delimited field's bytes, never nil (nil means
// absent in this package).
func bytesOf(what string, f field) ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, wrongType(what, f)
	}
	if f.b == nil {
		return []byte{}, nil
	}
	return f.b, nil
}

// u32 returns a varint field as uint32 (truncating like protobuf does).
func u32(what string, f field) (uint32, error) {
	if f.typ != protowire.VarintType {
		return 0, wrongType(what, f)
	}
	return uint32(f.v), nil
}

// boolean returns a varint field as bool.
func boolean(what string, f field) (bool, error) {
	if f.typ != protowire.VarintType {
		return false, wrongType(what, f)
	}
	return f.v != 0, nil
}

// merged concatenates raw bytes of a repeated occurrence of a message field
// (protobuf merges them).
func merged(prev, next []byte) []byte {
	if prev == nil {
		return next
	}
	out := make([]byte, 0, len(prev)+len(next))
	return append(append(out, prev...), next...)
}

// appendTag and appendVarint are protowire's with the one-byte case
// inline: every tag of these messages, most lengths and values.
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	if num < 16 {
		return append(b, byte(num<<3)|byte(typ))
	}
	return protowire.AppendTag(b, num, typ)
}

func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// sizeTag and sizeVarint are protowire's with the one-byte case inline.
func sizeTag(num protowire.Number) int {
	if num < 16 {
		return 1
	}
	return protowire.SizeTag(num)
}

func sizeVarint(v uint64) int {
	if v < 0x80 {
		return 1
	}
	return protowire.SizeVarint(v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return append(appendHeader(b, num, len(s)), s...)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if v == nil {
		return b
	}
	return append(appendHeader(b, num, len(v)), v...)
}

func appendNonEmptyBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return appendBytes(b, num, v)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, num, protowire.VarintType)
	return appendVarint(b, v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return appendUint(b, num, 1)
}

// The encoders compute a message's exact size first, so that each message
// is built with one allocation and embedded messages get their length
// prefix before their fields (no reserving and shifting). The size*
// functions mirror the append* ones above.

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return fieldSize(num, len(s))
}

func sizeBytes(num protowire.Number, v []byte) int {
	if v == nil {
		return 0
	}
	return fieldSize(num, len(v))
}

func sizeNonEmptyBytes(num protowire.Number, v []byte) int {
	if len(v) == 0 {
		return 0
	}
	return fieldSize(num, len(v))
}

func sizeUint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return sizeTag(num) + sizeVarint(v)
}

func sizeBool(num protowire.Number, v bool) int {
	if !v {
		return 0
	}
	return sizeTag(num) + 1
}

// fieldSize is the encoded size of a length-delimited field of n bytes.
func fieldSize(num protowire.Number, n int) int {
	if num < 16 && n < 0x80 {
		return 2 + n
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// appendHeader writes the tag and length of a length-delimited field of n
// bytes (an embedded message whose fields follow).
func appendHeader(b []byte, num protowire.Number, n int) []byte {
	if num < 16 && n < 0x80 {
		return append(b, byte(num<<3)|byte(protowire.BytesType), byte(n))
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.BytesType), uint64(n))
}

// protowireAppendVarintField writes a varint field even when it is zero (a
// oneof member's presence is its encoding).
func protowireAppendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = appendTag(b, num, protowire.VarintType)
	return appendVarint(b, v)
}

// setStr, setU32 and setBoolean store a decoded field only when it decodes
// (a field of the wrong wire type must leave the value alone).
func setStr(dst *string, what string, f field) error {
	v, err := str(what, f)
	if err == nil {
		*dst = v
	}
	return err
}

func setU32(dst *uint32, what string, f field) error {
	v, err := u32(what, f)
	if err == nil {
		*dst = v
	}
	return err
}

func setBoolean(dst *bool, what string, f field) error {
	v, err := boolean(what, f)
	if err == nil {
		*dst = v
	}
	return err
}

// checkAny verifies that b is a well-formed google.protobuf.Any (type_url a
// UTF-8 string, value bytes), as the generated code would on decode. It
// runs for every command and event: the field names of its errors are only
// built on failure, and type_url is checked without a copy.
func checkAny(what string, b []byte) error {
	return walk(what, b, nil, func(f field) error {
		switch f.num {
		case 1:
			if f.typ != protowire.BytesType {
				return errWrongType
			}
			if !utf8.Valid(f.b) {
				return notUTF8(what+".type_url", f)
			}
		case 2:
			if f.typ != protowire.BytesType {
				return errWrongType
			}
		}
		return nil
	})
}
