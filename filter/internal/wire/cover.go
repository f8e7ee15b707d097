package wire

import "google.golang.org/protobuf/encoding/protowire"

// Cover is angzarr.Cover: which aggregate and workflow a book is about.
type Cover struct {
	// Root is the value of the root UUID (nil when the cover has no root).
	Root          []byte
	Domain        string
	CorrelationID string
	// rootRaw is the decoded UUID message, written back unchanged.
	rootRaw []byte
	unknown []byte
}

// DecodeCover decodes an angzarr.Cover.
func DecodeCover(b []byte) (*Cover, error) {
	c := &Cover{}
	if err := decodeCover(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeCover decodes b into c (zero).
func decodeCover(b []byte, c *Cover) error {
	var rootRaw []byte
	err := walk("Cover", b, &c.unknown, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var raw []byte
			if raw, err = bytesOf("Cover.root", f); err == nil {
				rootRaw = merged(rootRaw, raw)
			}
		case 2:
			err = setStr(&c.Domain, "Cover.domain", f)
		case 3:
			err = setStr(&c.CorrelationID, "Cover.correlation_id", f)
		default:
			c.unknown = append(c.unknown, f.raw...)
		}
		return err
	})
	if err == nil && rootRaw != nil {
		c.rootRaw = rootRaw
		c.Root, err = decodeUUID(rootRaw)
	}
	return err
}

// checkCover reports what DecodeCover would about b, without building
// the cover.
func checkCover(b []byte) error {
	var rootRaw []byte
	err := walk("Cover", b, nil, func(f field) error {
		switch f.num {
		case 1:
			raw, err := bytesOf("Cover.root", f)
			if err == nil {
				rootRaw = merged(rootRaw, raw)
			}
			return err
		case 2:
			return checkStr("Cover.domain", f)
		case 3:
			return checkStr("Cover.correlation_id", f)
		}
		return nil
	})
	if err == nil && rootRaw != nil {
		_, err = decodeUUID(rootRaw)
	}
	return err
}

// decodeUUID returns angzarr.UUID's value (nil when unset).
func decodeUUID(b []byte) ([]byte, error) {
	var v []byte
	err := walk("UUID", b, nil, func(f field) error {
		if f.num != 1 {
			return nil
		}
		b, err := bytesOf("UUID.value", f)
		if err == nil {
			v = b
		}
		return err
	})
	if len(v) == 0 {
		v = nil
	}
	return v, err
}

// Append encodes the cover's fields onto b.
func (c *Cover) Append(b []byte) []byte {
	if c.rootRaw != nil {
		b = appendBytes(b, 1, c.rootRaw)
	} else if c.Root != nil {
		b = appendHeader(b, 1, sizeNonEmptyBytes(1, c.Root))
		b = appendNonEmptyBytes(b, 1, c.Root)
	}
	b = appendString(b, 2, c.Domain)
	b = appendString(b, 3, c.CorrelationID)
	return append(b, c.unknown...)
}

// size is the length of Append's encoding.
func (c *Cover) size() int {
	n := 0
	if c.rootRaw != nil {
		n = sizeBytes(1, c.rootRaw)
	} else if c.Root != nil {
		n = fieldSize(1, sizeNonEmptyBytes(1, c.Root))
	}
	return n + sizeString(2, c.Domain) + sizeString(3, c.CorrelationID) + len(c.unknown)
}

// appendCover writes c as the embedded message field num.
func appendCover(b []byte, num protowire.Number, c *Cover) []byte {
	return c.Append(appendHeader(b, num, c.size()))
}

// coverSize is the size of c as the embedded message field num (0 for nil).
func coverSize(num protowire.Number, c *Cover) int {
	if c == nil {
		return 0
	}
	return fieldSize(num, c.size())
}

// Key is the aggregate's identity without the correlation id.
func (c *Cover) Key() *Cover { return &Cover{Root: c.Root, Domain: c.Domain} }
