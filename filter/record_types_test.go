package filter

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// counterEventType is the type of the counter domain's events.
const counterEventType = counter.EventType

// typedConfig declares the counter domain's event type.
const typedConfig = `{"domains":["counter"],"max_retries":3,"event_types":{"counter":["` + counterEventType + `"]}}`

// TestRecordEventTypes: Record stores only events of the domain's declared
// types, natively and in the real .wasm; a refused book stores nothing.
func TestRecordEventTypes(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		cover := &pb.Cover{Domain: "counter", Root: root(2)}
		foreign, _ := anypb.New(wrapperspb.String("OrderCompleted"))
		forged := &pb.EventPage{Event: &anypb.Any{TypeUrl: "type.googleapis.com/examples.OrderCompleted", Value: []byte{8, 1}}}
		for _, tc := range []struct {
			name  string
			cfg   string
			pages []*pb.EventPage
			code  Code
			msg   string
		}{
			{"a declared type is stored", typedConfig, []*pb.EventPage{counter.Event(3), counter.Event(4)}, OK, ""},
			{"another domain's type is INVALID_ARGUMENT", typedConfig,
				[]*pb.EventPage{counter.Event(3), forged}, InvalidArgument,
				`event page 1 has type "examples.OrderCompleted", which is not an event type of domain "counter"`},
			{"a type of no domain is INVALID_ARGUMENT", typedConfig,
				[]*pb.EventPage{{Event: foreign}}, InvalidArgument, `type "google.protobuf.StringValue"`},
			{"an untyped event is INVALID_ARGUMENT", typedConfig,
				[]*pb.EventPage{{Event: &anypb.Any{Value: []byte{8, 1}}}}, InvalidArgument, "event page 0 has no type"},
			{"a type_url that only ends like a declared type is refused", typedConfig,
				[]*pb.EventPage{{Event: &anypb.Any{TypeUrl: "type.googleapis.com/x." + counterEventType}}}, InvalidArgument, "x.google.protobuf.Int64Value"},
			{"a domain without declared types refuses Record", counterConfig,
				[]*pb.EventPage{counter.Event(3)}, FailedPrecondition, `domain "counter" declares no event types`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hs := newHarnessIn(t, mode, tc.cfg)
				r := hs.send(PathRecord, frame(t, &pb.EventBook{Cover: cover, Pages: tc.pages}))
				wantCode(t, r, tc.code, tc.msg)
				want := 0
				if tc.code == OK {
					want = len(tc.pages)
				} else if !r.local {
					t.Fatal("refusal was not a local reply")
				}
				if got := len(hs.stored(2)); got != want {
					t.Fatalf("stored %d events, want %d", got, want)
				}
				logged := strings.Contains(strings.Join(hs.h.logs, "\n"), "no event types declared (event_types), every Record refused, for domains counter")
				if logged != (tc.cfg == counterConfig) {
					t.Fatalf("the configuration without event types logged: %v (logs %q)", logged, hs.h.logs)
				}
			})
		}
		t.Run("a long foreign type name is cut in the message", func(t *testing.T) {
			hs := newHarnessIn(t, mode, typedConfig)
			long := "x." + strings.Repeat("a", 5000)
			r := hs.send(PathRecord, frame(t, &pb.EventBook{Cover: cover, Pages: []*pb.EventPage{{Event: &anypb.Any{TypeUrl: "t/" + long}}}}))
			wantCode(t, r, InvalidArgument, "...")
			if len(r.message) > 400 {
				t.Fatalf("message of %d bytes", len(r.message))
			}
		})
	})
}
