package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// EventPage is angzarr.EventPage.
type EventPage struct {
	// Num is the page's sequence when HasNum.
	Num    uint32
	HasNum bool
	// Force is the force-write flag when set (the other arm of the oneof).
	Force bool
	// CreatedAt and Event are the raw Timestamp and Any (nil when absent).
	CreatedAt []byte
	Event     []byte
	unknown   []byte
}

// EventBook is angzarr.EventBook.
type EventBook struct {
	Cover *Cover
	// Snapshot and SnapshotState are raw (nil when absent).
	Snapshot      []byte
	Pages         []*EventPage
	SnapshotState []byte
	unknown       []byte
}

// DecodeEventBook decodes an angzarr.EventBook.
func DecodeEventBook(b []byte) (*EventBook, error) { return decodeEventBook(b, true) }

// DecodeDecision decodes an angzarr.EventBook whose cover is not needed
// (the business logic's decision: its pages are stored under the stream's
// own cover). The cover is checked as DecodeEventBook checks it, with the
// same errors, but not built: Cover is nil.
func DecodeDecision(b []byte) (*EventBook, error) { return decodeEventBook(b, false) }

// eventBookParts holds a decoded EventBook with its cover and first page
// (one allocation for the usual one-page book).
type eventBookParts struct {
	book  EventBook
	cover Cover
	page  EventPage
	pages [1]*EventPage
}

func decodeEventBook(b []byte, keepCover bool) (*EventBook, error) {
	parts := &eventBookParts{}
	eb := &parts.book
	var coverRaw []byte
	err := walk("EventBook", b, &eb.unknown, func(f field) error {
		var err error
		var raw []byte
		switch f.num {
		case 1:
			if raw, err = bytesOf("EventBook.cover", f); err == nil {
				coverRaw = merged(coverRaw, raw)
			}
		case 2:
			if raw, err = bytesOf("EventBook.snapshot", f); err == nil {
				eb.Snapshot = merged(eb.Snapshot, raw)
			}
		case 3:
			if raw, err = bytesOf("EventBook.pages", f); err == nil {
				if eb.Pages == nil {
					if err = decodeEventPage(raw, &parts.page); err == nil {
						parts.pages[0] = &parts.page
						eb.Pages = parts.pages[:]
					}
				} else {
					p := &EventPage{}
					if err = decodeEventPage(raw, p); err == nil {
						eb.Pages = append(eb.Pages, p)
					}
				}
			}
		case 5:
			if raw, err = anyBytes("EventBook.snapshot_state", f); err == nil {
				eb.SnapshotState = merged(eb.SnapshotState, raw)
			}
		default:
			eb.unknown = append(eb.unknown, f.raw...)
		}
		return err
	})
	switch {
	case err != nil, coverRaw == nil:
	case keepCover:
		if err = decodeCover(coverRaw, &parts.cover); err == nil {
			eb.Cover = &parts.cover
		}
	default:
		err = checkCover(coverRaw)
	}
	if err != nil {
		return nil, err
	}
	return eb, nil
}

// decodeEventPage decodes b into p (zero).
func decodeEventPage(b []byte, p *EventPage) error {
	return walk("EventPage", b, &p.unknown, func(f field) error {
		var err error
		var raw []byte
		switch f.num {
		case 1:
			if err = setU32(&p.Num, "EventPage.num", f); err == nil {
				p.HasNum, p.Force = true, false
			}
		case 2:
			if err = setBoolean(&p.Force, "EventPage.force", f); err == nil {
				p.HasNum = false
			}
		case 3:
			if raw, err = bytesOf("EventPage.created_at", f); err == nil {
				p.CreatedAt = merged(p.CreatedAt, raw)
			}
		case 4:
			if raw, err = anyBytes("EventPage.event", f); err == nil {
				p.Event = merged(p.Event, raw)
			}
		default:
			p.unknown = append(p.unknown, f.raw...)
		}
		return err
	})
}

// Append encodes the book onto b.
func (eb *EventBook) Append(b []byte) []byte {
	if eb.Cover != nil {
		b = appendCover(b, 1, eb.Cover)
	}
	b = appendBytes(b, 2, eb.Snapshot)
	for _, p := range eb.Pages {
		b = p.Append(appendHeader(b, 3, p.size()))
	}
	b = appendBytes(b, 5, eb.SnapshotState)
	return append(b, eb.unknown...)
}

// size is the length of Append's encoding.
func (eb *EventBook) size() int {
	n := coverSize(1, eb.Cover) + sizeBytes(2, eb.Snapshot)
	for _, p := range eb.Pages {
		n += fieldSize(3, p.size())
	}
	return n + sizeBytes(5, eb.SnapshotState) + len(eb.unknown)
}

// Append encodes the page onto b.
func (p *EventPage) Append(b []byte) []byte {
	switch {
	case p.HasNum:
		b = protowireAppendVarintField(b, 1, uint64(p.Num))
	case p.Force:
		b = appendBool(b, 2, true)
	}
	b = appendBytes(b, 3, p.CreatedAt)
	b = appendBytes(b, 4, p.Event)
	return append(b, p.unknown...)
}

// size is the length of Append's encoding.
func (p *EventPage) size() int {
	n := 0
	switch {
	case p.HasNum:
		n = sizeTag(1) + sizeVarint(uint64(p.Num))
	case p.Force:
		n = sizeBool(2, true)
	}
	return n + sizeBytes(3, p.CreatedAt) + sizeBytes(4, p.Event) + len(p.unknown)
}

// PagesSize is the number of bytes pages add to an EventBook's encoding.
func PagesSize(pages []*EventPage) int {
	n := 0
	for _, p := range pages {
		n += fieldSize(3, p.size())
	}
	return n
}

// PageFields returns the encoded pages fields of a raw EventBook, tags
// included, in order: appended to another raw EventBook they add its pages
// after that book's own (repeated fields concatenate). When the pages are
// contiguous in bookRaw, as an encoder writes them, the result is that
// part of bookRaw (no copy, capacity limited to it); otherwise a copy.
func PageFields(bookRaw []byte) ([]byte, error) {
	var out []byte
	lo, hi, copied := -1, -1, false
	err := walk("EventBook", bookRaw, nil, func(f field) error {
		if f.num != 3 {
			return nil
		}
		if f.typ != protowire.BytesType {
			return fmt.Errorf("%w: EventBook.pages: wire type %d", ErrMalformed, f.typ)
		}
		// f.raw is a prefix of a suffix of bookRaw: its offset follows
		// from the capacities.
		at := cap(bookRaw) - cap(f.raw)
		switch {
		case copied:
			out = append(out, f.raw...)
		case lo < 0:
			lo, hi = at, at+len(f.raw)
		case at == hi:
			hi += len(f.raw)
		default:
			out = append(append(out, bookRaw[lo:hi]...), f.raw...)
			copied = true
		}
		return nil
	})
	switch {
	case err != nil, copied:
		return out, err
	case lo < 0:
		return nil, nil
	}
	return bookRaw[lo:hi:hi], nil
}

// AnyTypeName returns the full message name of a google.protobuf.Any's
// type_url (what follows its last '/', as schema.MessageName reads it; the
// last type_url field wins, as in a decode), or "" when it has none. b was
// checked by the decoder (checkAny).
func AnyTypeName(b []byte) string {
	var url []byte
	_ = walk("Any", b, nil, func(f field) error {
		if f.num == 1 && f.typ == protowire.BytesType {
			url = f.b
		}
		return nil
	})
	for i := len(url) - 1; i >= 0; i-- {
		if url[i] == '/' {
			return string(url[i+1:])
		}
	}
	return string(url)
}
