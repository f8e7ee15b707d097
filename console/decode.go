package console

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/schema"
)

func slicesSort[T ~uint32 | ~string](s []T) { slices.Sort(s) }

// eventJSON is one stored event as the UI shows it.
type eventJSON struct {
	Domain      string    `json:"domain"`
	Root        string    `json:"root"`
	Correlation string    `json:"correlation,omitempty"`
	Sequence    uint32    `json:"sequence"`
	Time        time.Time `json:"time"`
	// Type is the event's full protobuf name ("examples.OrderCreated").
	Type string `json:"type"`
	// Data is the event decoded to JSON (protojson), absent when its type
	// is not known to this binary (DecodeError says so).
	Data        json.RawMessage `json:"data,omitempty"`
	DecodeError string          `json:"decodeError,omitempty"`
	// Raw is the stored EventPage as protobuf bytes, base64 (raw=1 only).
	Raw string `json:"raw,omitempty"`
	// Position is the event's place in its domain's log, when known.
	Position string `json:"position,omitempty"`
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}

// rootString renders a UUID value, "" when it is not 16 bytes.
func rootString(u *pb.UUID) string {
	v := u.GetValue()
	if len(v) != 16 {
		return ""
	}
	return uuid.UUID(v).String()
}

// typeName is the full name of an Any's message.
func typeName(url string) string { return string(schema.MessageName(url)) }

// decodeBook flattens a book into events; raw adds the stored bytes.
func decodeBook(b *pb.EventBook, raw bool) []eventJSON {
	c := b.GetCover()
	out := make([]eventJSON, 0, len(b.GetPages()))
	for _, p := range b.GetPages() {
		e := eventJSON{Domain: c.GetDomain(), Root: rootString(c.GetRoot()), Correlation: c.GetCorrelationId(),
			Sequence: p.GetNum(), Time: p.GetCreatedAt().AsTime(), Type: typeName(p.GetEvent().GetTypeUrl())}
		if pos := b.GetPosition(); pos != nil {
			e.Position = formatCursor(map[uint32]uint64{pos.GetPartition(): pos.GetOffset()})
		}
		if msg, err := p.GetEvent().UnmarshalNew(); err != nil {
			e.DecodeError = "not decoded: " + err.Error()
		} else if j, err := jsonOpts.Marshal(msg); err != nil {
			e.DecodeError = "not decoded: " + err.Error()
		} else {
			e.Data = j
		}
		if raw {
			if bs, err := proto.Marshal(p); err == nil {
				e.Raw = base64.StdEncoding.EncodeToString(bs)
			}
		}
		out = append(out, e)
	}
	return out
}
