package redis

import (
	"encoding/binary"
	"errors"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// A stored page is TS CIDLEN CID EVENT: TS the append's Redis server time as
// 16 decimal digits of microseconds (added by the script), CIDLEN a uvarint,
// CID the correlation id, EVENT the marshalled google.protobuf.Any. The
// sequence is the page's list index and is not stored.
const tsLen = 16

// encodePage encodes what Go knows of a page (everything but TS).
func encodePage(cid string, event *anypb.Any) ([]byte, error) {
	// The event is marshalled in place, after the correlation id: one
	// buffer per page, sized once.
	b := make([]byte, 0, binary.MaxVarintLen64+len(cid)+proto.Size(event))
	b = binary.AppendUvarint(b, uint64(len(cid)))
	b = append(b, cid...)
	return proto.MarshalOptions{}.MarshalAppend(b, event)
}

var errCorrupt = errors.New("corrupt stored page")

// decodePage decodes a stored page with sequence seq.
func decodePage(seq uint32, raw string) (*pb.EventPage, string, error) {
	if len(raw) < tsLen {
		return nil, "", errCorrupt
	}
	us, err := strconv.ParseInt(raw[:tsLen], 10, 64)
	if err != nil {
		return nil, "", errCorrupt
	}
	rest := []byte(raw[tsLen:])
	n, k := binary.Uvarint(rest)
	if k <= 0 || uint64(len(rest)-k) < n {
		return nil, "", errCorrupt
	}
	cid := string(rest[k : k+int(n)])
	a := &anypb.Any{}
	if err := proto.Unmarshal(rest[k+int(n):], a); err != nil {
		return nil, "", errCorrupt
	}
	return &pb.EventPage{
		Sequence:  &pb.EventPage_Num{Num: seq},
		CreatedAt: timestamppb.New(store.Micros(us)),
		Event:     a,
	}, cid, nil
}

// decodePages decodes consecutive stored pages starting at sequence first.
func decodePages(first uint32, raws []string) ([]*pb.EventPage, error) {
	out := make([]*pb.EventPage, len(raws))
	for i, r := range raws {
		p, _, err := decodePage(first+uint32(i), r)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// encodePages writes stored pages, consecutive from sequence first, in
// their wire form (store.AppendEncodedPage) without decoding their events.
func encodePages(first uint32, raws []string) ([]byte, error) {
	size := 0
	for _, r := range raws {
		size += store.EncodedPageSize(len(r))
	}
	b := make([]byte, 0, size)
	for i, raw := range raws {
		if len(raw) < tsLen {
			return nil, errCorrupt
		}
		us, err := strconv.ParseInt(raw[:tsLen], 10, 64)
		if err != nil {
			return nil, errCorrupt
		}
		n, k := uvarint(raw[tsLen:])
		if k <= 0 || uint64(len(raw)-tsLen-k) < n {
			return nil, errCorrupt
		}
		b = store.AppendEncodedPage(b, first+uint32(i), us, raw[tsLen+k+int(n):])
	}
	return b, nil
}

// uvarint is binary.Uvarint of a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<(7*i), i + 1
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, 0
}

// parseTS parses a 16-digit script timestamp.
func parseTS(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
