package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// EventLine is one event as `angzarr events --output json` prints it, one
// object per line.
type EventLine struct {
	Domain        string `json:"domain"`
	Root          string `json:"root"`
	CorrelationID string `json:"correlationId,omitempty"`
	Sequence      uint32 `json:"sequence"`
	CreatedAt     string `json:"createdAt,omitempty"`
	// Type is the event's full message name.
	Type string `json:"type"`
	// Event is the event as protojson; null when its type is unknown
	// (then EventBytes holds it, base64).
	Event      json.RawMessage `json:"event"`
	EventBytes []byte          `json:"eventBytes,omitempty"`
}

// Lines turns an EventBook into one EventLine per page.
func Lines(book *pb.EventBook, types *Types) []EventLine {
	c := book.GetCover()
	root := ""
	if r, err := uuid.FromBytes(c.GetRoot().GetValue()); err == nil {
		root = r.String()
	}
	out := make([]EventLine, 0, len(book.GetPages()))
	for _, p := range book.GetPages() {
		l := EventLine{Domain: c.GetDomain(), Root: root, CorrelationID: c.GetCorrelationId(), Sequence: p.GetNum(),
			Type: strings.TrimPrefix(p.GetEvent().GetTypeUrl(), "type.googleapis.com/")}
		if t := p.GetCreatedAt(); t != nil {
			l.CreatedAt = t.AsTime().UTC().Format(time.RFC3339Nano)
		}
		l.Event, l.EventBytes = decode(p, types)
		out = append(out, l)
	}
	return out
}

// decode renders the event as compact JSON, or returns its bytes when its
// type is unknown.
func decode(p *pb.EventPage, types *Types) (json.RawMessage, []byte) {
	a := p.GetEvent()
	if a == nil {
		return json.RawMessage("null"), nil
	}
	mt, err := types.FindMessageByURL(a.GetTypeUrl())
	if err != nil {
		return json.RawMessage("null"), a.GetValue()
	}
	m := mt.New().Interface()
	if err := a.UnmarshalTo(m); err != nil {
		return json.RawMessage("null"), a.GetValue()
	}
	b, err := protojson.MarshalOptions{Resolver: types}.Marshal(m)
	if err != nil {
		return json.RawMessage("null"), a.GetValue()
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return json.RawMessage("null"), a.GetValue()
	}
	return buf.Bytes(), nil
}

// printer writes events as a table or JSON lines.
type printer struct {
	w      *bufio.Writer
	json   bool
	types  *Types
	header bool
}

func newPrinter(w io.Writer, output string, types *Types) *printer {
	return &printer{w: bufio.NewWriter(w), json: output == OutputJSON, types: types}
}

// tableFormat has fixed widths so that a followed stream stays aligned.
const tableFormat = "%-12s  %-11s  %-36s  %4s  %-28s  %s\n"

func (p *printer) book(b *pb.EventBook) error {
	for _, l := range Lines(b, p.types) {
		if p.json {
			js, err := json.Marshal(l)
			if err != nil {
				return err
			}
			p.w.Write(append(js, '\n'))
			continue
		}
		if !p.header {
			fmt.Fprintf(p.w, tableFormat, "TIME", "DOMAIN", "ROOT", "SEQ", "TYPE", "EVENT")
			p.header = true
		}
		at := ""
		if t, err := time.Parse(time.RFC3339Nano, l.CreatedAt); err == nil {
			at = t.Local().Format("15:04:05.000")
		}
		ev := string(l.Event)
		if l.EventBytes != nil {
			ev = fmt.Sprintf("(unknown type, %d bytes; --descriptor-set decodes it)", len(l.EventBytes))
		}
		fmt.Fprintf(p.w, tableFormat, at, l.Domain, l.Root, fmt.Sprint(l.Sequence), l.Type, ev)
	}
	return p.w.Flush() // each book at once: --follow shows events as they come
}

func (p *printer) flush() error {
	if !p.json && !p.header {
		fmt.Fprintln(p.w, "(no events)")
	}
	return p.w.Flush()
}
