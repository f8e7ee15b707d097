package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Output formats of EventsConfig.Output.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// EventsConfig is one `angzarr events`.
type EventsConfig struct {
	// Domain alone reads the domain's whole log; with Root, one aggregate
	// (Root is a UUID or text mapped by ParseRoot).
	Domain, Root string
	// CorrelationID reads every event of one workflow, across domains
	// (narrowed to an aggregate when Domain and Root are set too).
	CorrelationID string
	// From and To select a range of sequences (To inclusive; nil: to the
	// end). From alone is a range too.
	From *uint32
	To   *uint32
	// AsOfSequence and AsOfTime cut the history at a sequence (inclusive)
	// or a time: the aggregate as it stood then.
	AsOfSequence *uint32
	AsOfTime     time.Time
	// Follow keeps streaming new events after the stored ones
	// (EventQuery.Synchronize) until the context is done.
	Follow bool
	// Raw shows the events as stored, without the domain's upcasters (old
	// versions stay old).
	Raw bool
	// Output is "table" (default) or "json" (one JSON object per line).
	Output string
	// Addr is the event service. Default: DataDir/endpoints.json's.
	Addr string
	// DataDir is where the local mesh's endpoints.json is. Default ".angzarr".
	DataDir string
	// Dial is the connection's transport: mTLS with an operator's
	// certificate (internal/identity.DialOption). Default: the local
	// mesh's operator certificate when it runs mTLS (DialFor), else
	// plaintext.
	Dial grpc.DialOption
	// DescriptorSet adds event types not registered in the binary.
	DescriptorSet string
	// Out receives the events.
	Out io.Writer
}

// Validate reports every problem of the configuration at once.
func (c *EventsConfig) Validate() error {
	var errs []error
	if c.Domain == "" && c.CorrelationID == "" {
		errs = append(errs, errors.New("name a DOMAIN (and ROOT) or a --correlation-id"))
	}
	if c.Root != "" && c.Domain == "" {
		errs = append(errs, errors.New("ROOT needs a DOMAIN"))
	}
	selections := 0
	if c.From != nil || c.To != nil {
		selections++
	}
	if c.AsOfSequence != nil {
		selections++
	}
	if !c.AsOfTime.IsZero() {
		selections++
	}
	if selections > 1 {
		errs = append(errs, errors.New("choose one of --from/--to, --as-of-sequence and --as-of-time"))
	}
	if c.From != nil && c.To != nil && *c.To < *c.From {
		errs = append(errs, fmt.Errorf("--to %d is before --from %d", *c.To, *c.From))
	}
	if c.Follow && (c.AsOfSequence != nil || !c.AsOfTime.IsZero()) {
		errs = append(errs, errors.New("--follow streams what comes next: it does not go with --as-of-sequence or --as-of-time"))
	}
	if (c.AsOfSequence != nil || !c.AsOfTime.IsZero()) && c.Root == "" && c.CorrelationID == "" {
		errs = append(errs, errors.New("--as-of-sequence and --as-of-time need one aggregate: DOMAIN ROOT"))
	}
	switch c.Output {
	case "", OutputTable, OutputJSON:
	default:
		errs = append(errs, fmt.Errorf("--output %q: want table or json", c.Output))
	}
	return errors.Join(errs...)
}

// Query builds the EventQuery request.
func (c *EventsConfig) Query() *pb.Query {
	q := &pb.Query{Cover: &pb.Cover{Domain: c.Domain, CorrelationId: c.CorrelationID}, Raw: c.Raw}
	if c.Root != "" {
		root := ParseRoot(c.Root)
		q.Cover.Root = &pb.UUID{Value: root[:]}
	}
	switch {
	case c.From != nil || c.To != nil:
		r := &pb.SequenceRange{Upper: c.To}
		if c.From != nil {
			r.Lower = *c.From
		}
		q.Selection = &pb.Query_Range{Range: r}
	case c.AsOfSequence != nil:
		q.Selection = &pb.Query_Temporal{Temporal: &pb.TemporalQuery{PointInTime: &pb.TemporalQuery_AsOfSequence{AsOfSequence: *c.AsOfSequence}}}
	case !c.AsOfTime.IsZero():
		q.Selection = &pb.Query_Temporal{Temporal: &pb.TemporalQuery{PointInTime: &pb.TemporalQuery_AsOfTime{AsOfTime: timestamppb.New(c.AsOfTime)}}}
	}
	return q
}

// ParseTime reads --as-of-time: RFC 3339 ("2026-11-26T05:00:00Z") or a
// duration ago ("90s", "5m", "2h") relative to now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-26T05:00:00Z) or a duration ago (5m)", s)
}

// ParseUint32 reads a sequence flag.
func ParseUint32(flag, s string) (*uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: want a sequence number", flag, s)
	}
	v := uint32(n)
	return &v, nil
}

// Events runs the query and writes the events to c.Out; with Follow it
// streams until ctx is done (then it returns nil).
func Events(ctx context.Context, c EventsConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	types, err := LoadTypes(c.DescriptorSet)
	if err != nil {
		return err
	}
	addr := c.Addr
	if addr == "" {
		f, err := endpoints.Read(c.DataDir)
		if err != nil {
			return err
		}
		addr = f.EventService
	}
	dial := c.Dial
	if dial == nil {
		var err error
		if dial, err = DialFor(c.DataDir); err != nil {
			return err
		}
	}
	conn, err := grpc.NewClient(addr, dial)
	if err != nil {
		return err
	}
	defer conn.Close()
	p := newPrinter(c.Out, c.Output, types)
	eq := pb.NewEventQueryClient(conn)
	recv, err := c.open(ctx, eq)
	if err != nil {
		return explain(err, addr)
	}
	for {
		book, err := recv()
		if errors.Is(err, io.EOF) {
			return p.flush()
		}
		if err != nil {
			if c.Follow && ctx.Err() != nil {
				return p.flush()
			}
			return explain(err, addr)
		}
		if err := p.book(book); err != nil {
			return err
		}
	}
}

// open starts GetEvents, or Synchronize when following.
func (c *EventsConfig) open(ctx context.Context, eq pb.EventQueryClient) (func() (*pb.EventBook, error), error) {
	if !c.Follow {
		s, err := eq.GetEvents(ctx, c.Query())
		if err != nil {
			return nil, err
		}
		return s.Recv, nil
	}
	s, err := eq.Synchronize(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Send(c.Query()); err != nil {
		return nil, err
	}
	return s.Recv, nil
}
