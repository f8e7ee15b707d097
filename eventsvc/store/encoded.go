package store

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Encoded pages: a 1,000-event history is ~100 KB, and decoding it into
// messages only for gRPC to encode them again costs more than reading it.
// Backends therefore write a loaded history straight into its wire form,
// from the bytes they store (the event's marshalled google.protobuf.Any is
// copied, never decoded), and the gRPC server sends those bytes as they
// are (see Loaded.Encoded).

// Field numbers of the wire form (angzarr/types.proto).
const (
	bookPagesField     = 3 // EventBook.pages
	pageNumField       = 1 // EventPage.num
	pageCreatedAtField = 3 // EventPage.created_at
	pageEventField     = 4 // EventPage.event
	tsSecondsField     = 1 // google.protobuf.Timestamp.seconds
	tsNanosField       = 2 // google.protobuf.Timestamp.nanos
)

// AppendEncodedPage appends to b the page with sequence seq, creation time
// createdAt (microseconds since the Unix epoch) and event, the marshalled
// google.protobuf.Any of the event, as one EventBook.pages field: exactly
// the bytes proto.Marshal writes for that page in a book.
func AppendEncodedPage[E string | []byte](b []byte, seq uint32, createdAt int64, event E) []byte {
	sec, us := createdAt/1e6, createdAt%1e6
	if us < 0 {
		sec, us = sec-1, us+1e6
	}
	nanos := uint64(us) * 1000
	tsLen := 0
	if sec != 0 {
		tsLen += 1 + protowire.SizeVarint(uint64(sec))
	}
	if nanos != 0 {
		tsLen += 1 + protowire.SizeVarint(nanos)
	}
	pageLen := 1 + protowire.SizeVarint(uint64(seq)) +
		1 + protowire.SizeVarint(uint64(tsLen)) + tsLen +
		1 + protowire.SizeBytes(len(event))
	b = protowire.AppendTag(b, bookPagesField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(pageLen))
	b = protowire.AppendTag(b, pageCreatedAtField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(tsLen))
	if sec != 0 {
		b = protowire.AppendTag(b, tsSecondsField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(sec))
	}
	if nanos != 0 {
		b = protowire.AppendTag(b, tsNanosField, protowire.VarintType)
		b = protowire.AppendVarint(b, nanos)
	}
	b = protowire.AppendTag(b, pageEventField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(event)))
	b = append(b, event...)
	// Last, as proto-go writes a oneof member after the plain fields.
	b = protowire.AppendTag(b, pageNumField, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(seq))
}

// EncodedPageSize is the number of bytes AppendEncodedPage adds for an
// event of n bytes, at most: for sizing buffers.
func EncodedPageSize(n int) int { return n + 48 }

var errEncoded = errors.New("corrupt encoded pages")

// DecodeEncodedPages decodes pages written by AppendEncodedPage.
func DecodeEncodedPages(b []byte) ([]*pb.EventPage, error) {
	book := &pb.EventBook{}
	if err := proto.Unmarshal(b, book); err != nil {
		return nil, errors.Join(errEncoded, err)
	}
	if len(book.ProtoReflect().GetUnknown()) != 0 || book.Cover != nil || book.Snapshot != nil || book.SnapshotState != nil || book.Position != nil {
		return nil, errEncoded
	}
	return book.GetPages(), nil
}
