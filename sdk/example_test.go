package sdk_test

import (
	"context"
	"fmt"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// An aggregate from one command handler and one event applier, called the
// way the framework calls it.
func ExampleAggregate() {
	a := sdk.NewAggregate("points", func() *examples.CustomerState { return &examples.CustomerState{} })
	sdk.On(a, func(s *examples.CustomerState, c *examples.AddLoyaltyPoints) ([]proto.Message, error) {
		if c.Points <= 0 {
			return nil, sdk.Invalid("points must be positive, got %d", c.Points)
		}
		return []proto.Message{&examples.LoyaltyPointsAdded{Points: c.Points, NewBalance: s.LoyaltyPoints + c.Points}}, nil
	})
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsAdded) { s.LoyaltyPoints = e.NewBalance })

	pack := func(m proto.Message) *anypb.Any { p, _ := anypb.New(m); return p }
	history := &angzarr.EventBook{Pages: []*angzarr.EventPage{
		{Sequence: &angzarr.EventPage_Num{Num: 0}, Event: pack(&examples.LoyaltyPointsAdded{Points: 50, NewBalance: 50})},
	}}
	for _, points := range []int32{30, -1} {
		out, err := a.Handle(context.Background(), &angzarr.ContextualCommand{
			Events:  history,
			Command: &angzarr.CommandBook{Pages: []*angzarr.CommandPage{{Sequence: sdk.NextSequence(history), Command: pack(&examples.AddLoyaltyPoints{Points: points})}}},
		})
		if err != nil {
			fmt.Println(status.Code(err), status.Convert(err).Message())
			continue
		}
		e := &examples.LoyaltyPointsAdded{}
		_ = out.Pages[0].Event.UnmarshalTo(e)
		fmt.Println("new balance", e.NewBalance)
	}
	// Output:
	// new balance 80
	// InvalidArgument points must be positive, got -1
}
