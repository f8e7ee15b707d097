package sdk

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Saga reacts to events with commands to other aggregates, built from
// reactions (React). It serves angzarr.Saga: HandleSync answers the commands
// of every page it has a reaction for, in page order; Handle runs the same
// reactions and discards their commands.
type Saga struct {
	angzarr.UnimplementedSagaServer

	name      string
	reactions map[protoreflect.FullName]func(*angzarr.Cover, *anypb.Any) ([]*angzarr.CommandBook, error)
}

var _ angzarr.SagaServer = (*Saga)(nil)

// NewSaga returns a saga with no reactions yet.
func NewSaga(name string) *Saga {
	return &Saga{name: name, reactions: map[protoreflect.FullName]func(*angzarr.Cover, *anypb.Any) ([]*angzarr.CommandBook, error){}}
}

// Name is the saga's name.
func (s *Saga) Name() string { return s.name }

// React registers the saga's reaction to events of type E: source is the
// cover of the aggregate that emitted it (root, domain and correlation id).
// Build the commands with Command so they keep the correlation id.
func React[E proto.Message](s *Saga, react func(source *angzarr.Cover, event E) ([]*angzarr.CommandBook, error)) {
	s.reactions[nameOf[E]()] = func(source *angzarr.Cover, raw *anypb.Any) ([]*angzarr.CommandBook, error) {
		e, err := unpack[E](raw)
		if err != nil {
			return nil, err
		}
		return react(source, e)
	}
}

// HandleSync answers the commands the saga issues for book's events.
func (s *Saga) HandleSync(_ context.Context, book *angzarr.EventBook) (*angzarr.SagaResponse, error) {
	out := &angzarr.SagaResponse{}
	for _, page := range book.GetPages() {
		react, ok := s.reactions[messageName(page.GetEvent().GetTypeUrl())]
		if !ok {
			continue
		}
		commands, err := react(book.GetCover(), page.GetEvent())
		if err != nil {
			return nil, err
		}
		out.Commands = append(out.Commands, commands...)
	}
	return out, nil
}

// Handle runs the reactions and drops their commands (asynchronous mode,
// where the framework calls HandleSync to execute them).
func (s *Saga) Handle(ctx context.Context, book *angzarr.EventBook) (*emptypb.Empty, error) {
	if _, err := s.HandleSync(ctx, book); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Command builds a one-page CommandBook for the aggregate root of domain,
// carrying correlationID (a saga passes its trigger's). It sets nothing the
// framework sets: the page's expected sequence is 0, and the saga origin and
// resequencing are left to the framework.
func Command(domain string, root uuid.UUID, correlationID string, cmd proto.Message) (*angzarr.CommandBook, error) {
	packed, err := anypb.New(cmd)
	if err != nil {
		return nil, fmt.Errorf("pack %T: %w", cmd, err)
	}
	return &angzarr.CommandBook{
		Cover: &angzarr.Cover{Root: RootOf(root), Domain: domain, CorrelationId: correlationID},
		Pages: []*angzarr.CommandPage{{Command: packed}},
	}, nil
}
