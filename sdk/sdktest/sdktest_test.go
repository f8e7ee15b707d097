package sdktest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

// recorder is a testing.TB that records a failure instead of failing.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Errorf(format string, args ...any) { r.failure = fmt.Sprintf(format, args...) }

// check runs c against logic on a recorder and returns its failure.
func check(t *testing.T, c sdktest.Case, logic angzarr.BusinessLogicServer) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Check(r, logic)
	}()
	<-done
	return r.failure
}

func mustPack(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// alwaysCreates answers every command with CustomerCreated, and rejects
// RedeemLoyaltyPoints with NOT_FOUND "nothing here" but still returns events.
type alwaysCreates struct {
	angzarr.UnimplementedBusinessLogicServer
	leak bool
}

func (a alwaysCreates) Handle(_ context.Context, in *angzarr.ContextualCommand) (*angzarr.EventBook, error) {
	if in.GetCommand().GetPages()[0].GetCommand().MessageIs(&examples.RedeemLoyaltyPoints{}) {
		if a.leak {
			return &angzarr.EventBook{Pages: []*angzarr.EventPage{{Event: mustPack(&examples.CustomerCreated{})}}}, sdk.NotFound("nothing here")
		}
		return nil, sdk.NotFound("nothing here")
	}
	return &angzarr.EventBook{Pages: []*angzarr.EventPage{{Event: mustPack(&examples.CustomerCreated{Name: "x"})}}}, nil
}

func TestKitReportsMismatches(t *testing.T) {
	for _, c := range []struct {
		name  string
		c     sdktest.Case
		logic alwaysCreates
		fails string // "" when the case must pass
	}{
		{"matching events pass", sdktest.Case{When: &examples.CreateCustomer{}, Then: []proto.Message{&examples.CustomerCreated{Name: "x"}}}, alwaysCreates{}, ""},
		{"other events fail", sdktest.Case{When: &examples.CreateCustomer{}, Then: []proto.Message{&examples.CustomerCreated{Name: "y"}}}, alwaysCreates{}, "events differ"},
		{"missing events fail", sdktest.Case{When: &examples.CreateCustomer{}}, alwaysCreates{}, "events differ"},
		{"success when a rejection is expected fails", sdktest.Case{When: &examples.CreateCustomer{}, Code: codes.NotFound}, alwaysCreates{}, "want rejection"},
		{"matching rejection passes", sdktest.Case{When: &examples.RedeemLoyaltyPoints{}, Code: codes.NotFound, Phrase: "Nothing"}, alwaysCreates{}, ""},
		{"other code fails", sdktest.Case{When: &examples.RedeemLoyaltyPoints{}, Code: codes.InvalidArgument, Phrase: "nothing"}, alwaysCreates{}, "want rejection"},
		{"other phrase fails", sdktest.Case{When: &examples.RedeemLoyaltyPoints{}, Code: codes.NotFound, Phrase: "else"}, alwaysCreates{}, "want rejection"},
		{"a rejection with events fails", sdktest.Case{When: &examples.RedeemLoyaltyPoints{}, Code: codes.NotFound, Phrase: "nothing"}, alwaysCreates{leak: true}, "no events"},
		{"a rejection when events are expected fails", sdktest.Case{When: &examples.RedeemLoyaltyPoints{}, Then: []proto.Message{&examples.CustomerCreated{}}}, alwaysCreates{}, "got error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := check(t, c.c, c.logic)
			if (c.fails == "") != (got == "") || !strings.Contains(got, c.fails) {
				t.Fatalf("failure %q, want one containing %q", got, c.fails)
			}
		})
	}
}
