package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Sync modes of SendConfig.Sync.
const (
	SyncNone    = "none"
	SyncSimple  = "simple"
	SyncCascade = "cascade"
)

// SendConfig is one `angzarr send`.
type SendConfig struct {
	// Domain, Root, Type and JSON are the arguments: the target domain, the
	// aggregate root (a UUID, or any text mapped by ParseRoot), the command's
	// message type (full or unambiguous short name) and its protojson.
	Domain, Root, Type, JSON string
	// Addr is the domain's angzarr.BusinessCoordinator. Default: the
	// domain's proxy in DataDir/endpoints.json.
	Addr string
	// DataDir is where the local mesh's endpoints.json is. Default ".angzarr".
	DataDir string
	// Dial is the connection's transport: mTLS with an operator's
	// certificate (internal/identity.DialOption). Default: the local
	// mesh's operator certificate when it runs mTLS (DialFor), else
	// plaintext.
	Dial grpc.DialOption
	// DescriptorSet is a FileDescriptorSet with the command's type, for
	// types not registered in the binary. Optional.
	DescriptorSet string
	// Sync is "" (Handle) or none|simple|cascade (HandleSync with that mode).
	Sync string
	// ExpectSequence is the command page's sequence: the aggregate's next
	// sequence as the client knows it, 0 for a new aggregate (the default).
	ExpectSequence uint32
	// AutoResequence lets the framework use the aggregate's current
	// sequence (and retry on conflicts) instead of ExpectSequence.
	AutoResequence bool
	// CorrelationID is set on the cover; the filter assigns one when empty.
	CorrelationID string
	// IdempotencyKey makes a repeated send take effect once. Optional.
	IdempotencyKey string
	// Timeout bounds the call. Default 30s.
	Timeout time.Duration
	// Out receives the CommandResponse as JSON.
	Out io.Writer
}

// Validate reports every problem of the configuration at once.
func (c *SendConfig) Validate() error {
	var errs []error
	if c.Domain == "" {
		errs = append(errs, errors.New("DOMAIN is required"))
	}
	if c.Root == "" {
		errs = append(errs, errors.New("ROOT is required"))
	}
	if c.Type == "" {
		errs = append(errs, errors.New("TYPE is required"))
	}
	switch c.Sync {
	case "", SyncNone, SyncSimple, SyncCascade:
	default:
		errs = append(errs, fmt.Errorf("--sync %q: want none, simple or cascade", c.Sync))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: must not be negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// Command builds the CommandBook: the JSON decoded as Type and packed in
// one page.
func (c *SendConfig) Command(types *Types) (*pb.CommandBook, error) {
	mt, err := types.Message(c.Type)
	if err != nil {
		return nil, err
	}
	msg := mt.New().Interface()
	js := c.JSON
	if strings.TrimSpace(js) == "" {
		js = "{}"
	}
	if err := (protojson.UnmarshalOptions{Resolver: types}).Unmarshal([]byte(js), msg); err != nil {
		return nil, fmt.Errorf("JSON for %s: %w", mt.Descriptor().FullName(), err)
	}
	cmd, err := anypb.New(msg)
	if err != nil {
		return nil, err
	}
	root := ParseRoot(c.Root)
	return &pb.CommandBook{
		Cover:          &pb.Cover{Domain: c.Domain, Root: &pb.UUID{Value: root[:]}, CorrelationId: c.CorrelationID},
		Pages:          []*pb.CommandPage{{Sequence: c.ExpectSequence, Command: cmd}},
		AutoResequence: c.AutoResequence,
		IdempotencyKey: c.IdempotencyKey,
	}, nil
}

// Send sends the command and writes the response as JSON to c.Out.
func Send(ctx context.Context, c SendConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	types, err := LoadTypes(c.DescriptorSet)
	if err != nil {
		return err
	}
	book, err := c.Command(types)
	if err != nil {
		return err
	}
	addr := c.Addr
	if addr == "" {
		f, err := endpoints.Read(c.DataDir)
		if err != nil {
			return err
		}
		if addr, err = f.Coordinator(c.Domain); err != nil {
			return err
		}
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
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bc := pb.NewBusinessCoordinatorClient(conn)
	var resp *pb.CommandResponse
	if c.Sync == "" {
		resp, err = bc.Handle(ctx, book)
	} else {
		resp, err = bc.HandleSync(ctx, &pb.SyncCommandBook{Command: book, SyncMode: syncMode(c.Sync)})
	}
	if err != nil {
		return explain(err, addr)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", Resolver: types}.Marshal(resp)
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	_, err = fmt.Fprintf(c.Out, "%s\n", b)
	return err
}

func syncMode(s string) pb.SyncMode {
	switch s {
	case SyncSimple:
		return pb.SyncMode_SYNC_MODE_SIMPLE
	case SyncCascade:
		return pb.SyncMode_SYNC_MODE_CASCADE
	}
	return pb.SyncMode_SYNC_MODE_NONE
}

// explain adds what to do to the errors a user can act on.
func explain(err error, addr string) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Aborted:
		for _, d := range st.Details() {
			if sc, ok := d.(*pb.SequenceConflict); ok {
				return fmt.Errorf("%s: %s\n(send with --expect-sequence %d, or let the framework choose with --auto-resequence)",
					st.Code(), st.Message(), sc.GetNextSequence())
			}
		}
	case codes.Unavailable:
		return fmt.Errorf("%s: %s (is the mesh running? `angzarr dev`; address %s)", st.Code(), st.Message(), addr)
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}
