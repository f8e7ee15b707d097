package sdk_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

// points is a tiny aggregate over CustomerState: AddLoyaltyPoints adds, and
// RedeemLoyaltyPoints is refused beyond the balance.
func points() *sdk.Aggregate[*examples.CustomerState] {
	a := sdk.NewAggregate("points", func() *examples.CustomerState { return &examples.CustomerState{} })
	sdk.On(a, func(s *examples.CustomerState, c *examples.AddLoyaltyPoints) ([]proto.Message, error) {
		if c.Points <= 0 {
			return nil, sdk.Invalid("points must be positive")
		}
		return msgs{&examples.LoyaltyPointsAdded{Points: c.Points, NewBalance: s.LoyaltyPoints + c.Points}}, nil
	})
	sdk.On(a, func(s *examples.CustomerState, c *examples.RedeemLoyaltyPoints) ([]proto.Message, error) {
		if c.Points > s.LoyaltyPoints {
			return nil, sdk.Precondition("insufficient points")
		}
		return msgs{&examples.LoyaltyPointsRedeemed{Points: c.Points, NewBalance: s.LoyaltyPoints - c.Points}}, nil
	})
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsAdded) { s.LoyaltyPoints = e.NewBalance })
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsRedeemed) { s.LoyaltyPoints = e.NewBalance })
	return a
}

func added(n, balance int32) *examples.LoyaltyPointsAdded {
	return &examples.LoyaltyPointsAdded{Points: n, NewBalance: balance}
}

func TestGivenWhenThen(t *testing.T) {
	sdktest.Run(t, points(), []sdktest.Case{
		{Name: "new aggregate", When: &examples.AddLoyaltyPoints{Points: 5}, Then: msgs{added(5, 5)}},
		{Name: "state from events", Given: msgs{added(5, 5), added(2, 7)}, When: &examples.AddLoyaltyPoints{Points: 1}, Then: msgs{added(1, 8)}},
		{Name: "state from a snapshot", Snapshot: &examples.CustomerState{LoyaltyPoints: 100}, SnapshotSequence: 9,
			Given: msgs{added(5, 105)}, When: &examples.AddLoyaltyPoints{Points: 1}, Then: msgs{added(1, 106)}},
		{Name: "invalid", When: &examples.AddLoyaltyPoints{}, Code: codes.InvalidArgument, Phrase: "POSITIVE"},
		{Name: "precondition", Given: msgs{added(5, 5)}, When: &examples.RedeemLoyaltyPoints{Points: 6}, Code: codes.FailedPrecondition, Phrase: "insufficient"},
		{Name: "unknown command", When: &examples.CreateCustomer{}, Code: codes.InvalidArgument, Phrase: "no handler for command"},
	})
}

// handle calls the aggregate with history and command pages.
func handle(t *testing.T, a *sdk.Aggregate[*examples.CustomerState], history *angzarr.EventBook, cmds ...*anypb.Any) (*angzarr.EventBook, error) {
	t.Helper()
	book := &angzarr.CommandBook{Cover: history.GetCover()}
	for _, c := range cmds {
		book.Pages = append(book.Pages, &angzarr.CommandPage{Command: c})
	}
	return a.Handle(context.Background(), &angzarr.ContextualCommand{Events: history, Command: book})
}

func TestRoutesByMessageNameWhateverTheURLPrefix(t *testing.T) {
	cmd := sdktest.Pack(t, &examples.AddLoyaltyPoints{Points: 3})
	cmd.TypeUrl = "example.com/custom/examples.AddLoyaltyPoints"
	got, err := handle(t, points(), sdktest.Book(t, "points", sdktest.Root, 0), cmd)
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Equal(t, got.GetPages(), msgs{added(3, 3)})
}

func TestPagesSeeEarlierPagesEvents(t *testing.T) {
	got, err := handle(t, points(), sdktest.Book(t, "points", sdktest.Root, 0),
		sdktest.Pack(t, &examples.AddLoyaltyPoints{Points: 3}),
		sdktest.Pack(t, &examples.RedeemLoyaltyPoints{Points: 2}))
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Equal(t, got.GetPages(), msgs{added(3, 3), &examples.LoyaltyPointsRedeemed{Points: 2, NewBalance: 1}})
	for _, p := range got.GetPages() {
		if p.GetSequence() != nil || p.GetCreatedAt() != nil {
			t.Fatalf("pages must leave sequence and time to the framework: %v", p)
		}
	}
	if got.GetCover().GetCorrelationId() != sdktest.CorrelationID {
		t.Fatalf("cover %v", got.GetCover())
	}
}

func TestRejectionOfALaterPageRejectsAll(t *testing.T) {
	got, err := handle(t, points(), sdktest.Book(t, "points", sdktest.Root, 0),
		sdktest.Pack(t, &examples.AddLoyaltyPoints{Points: 3}),
		sdktest.Pack(t, &examples.RedeemLoyaltyPoints{Points: 4}))
	if status.Code(err) != codes.FailedPrecondition || got != nil {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestNoPagesIsANoOp(t *testing.T) {
	got, err := handle(t, points(), sdktest.Book(t, "points", sdktest.Root, 0, added(1, 1)))
	if err != nil || len(got.GetPages()) != 0 || got.GetSnapshotState() != nil {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestEmptyCommandPage(t *testing.T) {
	_, err := handle(t, points(), sdktest.Book(t, "points", sdktest.Root, 0), nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v", err)
	}
}

func TestRebuildSkipsPagesCoveredBySnapshot(t *testing.T) {
	book := sdktest.Book(t, "points", sdktest.Root, 0, added(1, 1), added(2, 3), added(4, 7))
	book.Snapshot = &angzarr.Snapshot{Sequence: 2, State: sdktest.Pack(t, &examples.CustomerState{LoyaltyPoints: 3})}
	s, err := points().Rebuild(book)
	if err != nil || s.LoyaltyPoints != 7 {
		t.Fatalf("state %v, %v; want balance 7", s, err)
	}
}

func TestRebuildRejectsASnapshotOfAnotherType(t *testing.T) {
	book := sdktest.Book(t, "points", sdktest.Root, 0)
	book.Snapshot = &angzarr.Snapshot{Sequence: 1, State: sdktest.Pack(t, &examples.CartState{})}
	if _, err := points().Rebuild(book); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v", err)
	}
}

func TestSnapshotPolicy(t *testing.T) {
	a := points().WithSnapshots(sdk.EveryN(3))
	// history of 2 events; one more reaches 3: snapshot.
	got, err := handle(t, a, sdktest.Book(t, "points", sdktest.Root, 0, added(1, 1), added(1, 2)), sdktest.Pack(t, &examples.AddLoyaltyPoints{Points: 5}))
	if err != nil {
		t.Fatal(err)
	}
	state := &examples.CustomerState{}
	if got.GetSnapshotState() == nil || got.GetSnapshotState().UnmarshalTo(state) != nil || state.LoyaltyPoints != 7 {
		t.Fatalf("want a snapshot with balance 7, got %v", got.GetSnapshotState())
	}
	// history of 3; one more is 4: no snapshot.
	got, err = handle(t, a, sdktest.Book(t, "points", sdktest.Root, 0, added(1, 1), added(1, 2), added(1, 3)), sdktest.Pack(t, &examples.AddLoyaltyPoints{Points: 5}))
	if err != nil || got.GetSnapshotState() != nil {
		t.Fatalf("want no snapshot, got %v, %v", got.GetSnapshotState(), err)
	}
}

func TestEveryN(t *testing.T) {
	for _, c := range []struct {
		n, before, after uint32
		want             bool
	}{{3, 2, 3, true}, {3, 3, 4, false}, {3, 1, 8, true}, {0, 0, 100, false}, {1, 0, 1, true}} {
		if got := sdk.EveryN(c.n)(c.before, c.after); got != c.want {
			t.Errorf("EveryN(%d)(%d, %d) = %v", c.n, c.before, c.after, got)
		}
	}
}

func TestNextSequence(t *testing.T) {
	if n := sdk.NextSequence(nil); n != 0 {
		t.Fatalf("empty: %d", n)
	}
	book := sdktest.Book(t, "points", sdktest.Root, 4, added(1, 1), added(1, 2))
	if n := sdk.NextSequence(book); n != 6 {
		t.Fatalf("pages 4,5: %d", n)
	}
	snapOnly := &angzarr.EventBook{Snapshot: &angzarr.Snapshot{Sequence: 9}}
	if n := sdk.NextSequence(snapOnly); n != 9 {
		t.Fatalf("snapshot at 9: %d", n)
	}
	snapOnly.Pages = append(snapOnly.Pages, &angzarr.EventPage{Sequence: &angzarr.EventPage_Force{Force: true}})
	if n := sdk.NextSequence(snapOnly); n != 10 {
		t.Fatalf("snapshot and a forced page: %d", n)
	}
}

func TestRejections(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{sdk.Invalid("bad %s", "x"), codes.InvalidArgument},
		{sdk.Precondition("no"), codes.FailedPrecondition},
		{sdk.NotFound("gone"), codes.NotFound},
	} {
		st := status.Convert(c.err)
		if st.Code() != c.code {
			t.Errorf("%v: code %v, want %v", c.err, st.Code(), c.code)
		}
		var r *sdk.Rejection
		if !errors.As(c.err, &r) || r.Code != c.code || st.Message() != r.Message {
			t.Errorf("%v: not a Rejection with message %q", c.err, st.Message())
		}
	}
	if got := status.Convert(sdk.Invalid("bad %s", "x")).Message(); got != "bad x" {
		t.Fatalf("message %q", got)
	}
}
