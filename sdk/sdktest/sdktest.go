// Package sdktest is a given / when / then test kit for business logic: given
// the events already recorded, when a command arrives, then these events are
// produced, or the command is rejected with this gRPC code and a message
// containing this phrase. It drives any angzarr.BusinessLogicServer (built
// with package sdk or not) through its Handle method, exactly as the
// framework calls it.
//
//	sdktest.Run(t, customer.Logic(), []sdktest.Case{{
//		Name:  "points accumulate",
//		Given: []proto.Message{&examples.CustomerCreated{Name: "Ann", Email: "a@x"}, &examples.LoyaltyPointsAdded{Points: 50, NewBalance: 50, NewLifetimePoints: 50}},
//		When:  &examples.AddLoyaltyPoints{Points: 30},
//		Then:  []proto.Message{&examples.LoyaltyPointsAdded{Points: 30, NewBalance: 80, NewLifetimePoints: 80}},
//	}})
package sdktest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Root is the aggregate root the kit uses when a Case names none.
var Root = uuid.MustParse("00000000-0000-4000-8000-000000000001")

// CorrelationID is the correlation id on every book the kit builds.
const CorrelationID = "sdktest-correlation"

// Case is one scenario.
type Case struct {
	// Name names the subtest.
	Name string
	// Root is the aggregate's root; Root (the package variable) when zero.
	Root uuid.UUID
	// Snapshot, when set, is the state stored before Given, covering
	// SnapshotSequence events; Given then starts at that sequence.
	Snapshot         proto.Message
	SnapshotSequence uint32
	// Given are the events already recorded, oldest first.
	Given []proto.Message
	// When is the command.
	When proto.Message
	// Then are the events the command must produce, in order (none when
	// empty). Ignored when Code is set.
	Then []proto.Message
	// Code, when not codes.OK, is the code the command must be rejected
	// with; the answer must then carry no events.
	Code codes.Code
	// Phrase must occur in the rejection's message (case-insensitive).
	Phrase string
}

// Run runs every case as a subtest against logic.
func Run(t *testing.T, logic angzarr.BusinessLogicServer, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) { c.Check(t, logic) })
	}
}

// Check runs the case against logic and reports every mismatch on t.
func (c Case) Check(t testing.TB, logic angzarr.BusinessLogicServer) {
	t.Helper()
	root := c.Root
	if root == uuid.Nil {
		root = Root
	}
	domain := "test"
	if d, ok := logic.(interface{ Domain() string }); ok {
		domain = d.Domain()
	}
	history := Book(t, domain, root, c.SnapshotSequence, c.Given...)
	if c.Snapshot != nil {
		history.Snapshot = &angzarr.Snapshot{Sequence: c.SnapshotSequence, State: Pack(t, c.Snapshot)}
	}
	cmd := &angzarr.CommandBook{
		Cover: history.GetCover(),
		Pages: []*angzarr.CommandPage{{Sequence: c.SnapshotSequence + uint32(len(c.Given)), Command: Pack(t, c.When)}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := logic.Handle(ctx, &angzarr.ContextualCommand{Events: history, Command: cmd})
	if err == nil {
		// A decision asking for compensation actions stores nothing; the
		// framework answers it as a refusal.
		if req := sdk.CompensationRequested(got); req != nil {
			got, err = nil, req
		}
	}

	if c.Code != codes.OK {
		if err == nil {
			t.Fatalf("want rejection %v %q, got events:\n%s", c.Code, c.Phrase, Format(t, got.GetPages()))
		}
		st := status.Convert(err)
		if st.Code() != c.Code || !strings.Contains(strings.ToLower(st.Message()), strings.ToLower(c.Phrase)) {
			t.Fatalf("want rejection %v containing %q, got %v %q", c.Code, c.Phrase, st.Code(), st.Message())
		}
		if len(got.GetPages()) > 0 {
			t.Fatalf("a rejection must carry no events, got:\n%s", Format(t, got.GetPages()))
		}
		return
	}
	if err != nil {
		t.Fatalf("want events, got error %v", err)
	}
	Equal(t, got.GetPages(), c.Then)
}

// Equal reports on t when the events of pages are not want, in order.
func Equal(t testing.TB, pages []*angzarr.EventPage, want []proto.Message) {
	t.Helper()
	ok := len(pages) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = proto.Equal(Unpack(t, pages[i].GetEvent()), want[i])
	}
	if !ok {
		var w strings.Builder
		for _, m := range want {
			w.WriteString(describe(m))
		}
		t.Fatalf("events differ\n got:\n%s want:\n%s", Format(t, pages), w.String())
	}
}

// Book builds the event book of aggregate root in domain: events numbered
// from first on, with the kit's correlation id.
func Book(t testing.TB, domain string, root uuid.UUID, first uint32, events ...proto.Message) *angzarr.EventBook {
	t.Helper()
	book := &angzarr.EventBook{Cover: &angzarr.Cover{Root: &angzarr.UUID{Value: root[:]}, Domain: domain, CorrelationId: CorrelationID}}
	for i, e := range events {
		book.Pages = append(book.Pages, &angzarr.EventPage{
			Sequence: &angzarr.EventPage_Num{Num: first + uint32(i)},
			Event:    Pack(t, e),
		})
	}
	return book
}

// Pack packs m into an Any, failing t on error.
func Pack(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatalf("pack %T: %v", m, err)
	}
	return a
}

// Unpack decodes an Any whose type is linked into the test binary.
func Unpack(t testing.TB, a *anypb.Any) proto.Message {
	t.Helper()
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("unpack %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

// Format renders the events of pages, one per line, for failure messages.
func Format(t testing.TB, pages []*angzarr.EventPage) string {
	t.Helper()
	var b strings.Builder
	for _, p := range pages {
		b.WriteString(describe(Unpack(t, p.GetEvent())))
	}
	return b.String()
}

func describe(m proto.Message) string {
	return "  " + string(m.ProtoReflect().Descriptor().FullName()) + " {" + prototext.MarshalOptions{}.Format(m) + "}\n"
}

// Decide runs cmd against logic given history and returns the events it
// produced, failing t on a rejection: for building histories command by
// command.
func Decide(t testing.TB, logic angzarr.BusinessLogicServer, history []proto.Message, cmd proto.Message) []proto.Message {
	t.Helper()
	domain := "test"
	if d, ok := logic.(interface{ Domain() string }); ok {
		domain = d.Domain()
	}
	book := Book(t, domain, Root, 0, history...)
	got, err := logic.Handle(context.Background(), &angzarr.ContextualCommand{
		Events:  book,
		Command: &angzarr.CommandBook{Cover: book.GetCover(), Pages: []*angzarr.CommandPage{{Sequence: uint32(len(history)), Command: Pack(t, cmd)}}},
	})
	if err != nil {
		t.Fatalf("%s rejected: %v", describe(cmd), err)
	}
	var events []proto.Message
	for _, p := range got.GetPages() {
		events = append(events, Unpack(t, p.GetEvent()))
	}
	return events
}
