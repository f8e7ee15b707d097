package filter

import (
	"maps"
	"testing"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// lastProps returns the properties the filter set on the harness's last
// stream.
func (hs *harness) lastProps() map[string]string {
	return hs.h.stream(hs.nextID - 1).props
}

// TestStreamProperties checks the angzarr.* stream properties the proxy
// reads for its spans and metrics, for commands that end in different
// ways.
func TestStreamProperties(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		const rootUUID = "00000000-0000-4000-0000-000000000001" // root(1)
		tests := []struct {
			name string
			run  func(hs *harness) result
			code Code
			want map[string]string // exactly these properties
		}{
			{"ok", func(hs *harness) result { return hs.handle(cmd(1, 0, 2)) }, OK, map[string]string{
				PropertyDomain: "counter", PropertyRoot: rootUUID, PropertyCorrelationID: "<generated>", PropertyOutcome: "ok",
			}},
			{"business rejection", func(hs *harness) result { return hs.handle(cmd(1, 0, -1)) }, FailedPrecondition, map[string]string{
				PropertyDomain: "counter", PropertyRoot: rootUUID, PropertyCorrelationID: "<generated>", PropertyOutcome: "rejected",
			}},
			{"given correlation id, stale sequence", func(hs *harness) result {
				c := cmd(1, 5, 1)
				c.Cover.CorrelationId = "flow-7"
				return hs.handle(c)
			}, Aborted, map[string]string{
				PropertyDomain: "counter", PropertyRoot: rootUUID, PropertyCorrelationID: "flow-7", PropertyOutcome: "aborted",
			}},
			{"invalid command of a served domain: domain and outcome only", func(hs *harness) result {
				return hs.handle(&pb.CommandBook{Cover: &pb.Cover{Domain: "counter", Root: root(1)}})
			}, InvalidArgument, map[string]string{PropertyDomain: "counter", PropertyOutcome: "invalid"}},
			{"unknown domain is never recorded", func(hs *harness) result {
				c := cmd(1, 0, 1)
				c.Cover.Domain = "elsewhere"
				return hs.handle(c)
			}, InvalidArgument, map[string]string{PropertyOutcome: "invalid"}},
			{"not a command: nothing", func(hs *harness) result { return hs.send("/other.Svc/Call", []byte{0, 0, 0, 0, 0}) }, OK, map[string]string{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				hs := newHarnessIn(t, mode, counterConfig)
				r := tc.run(hs)
				if r.code != tc.code {
					t.Fatalf("got %v, want code %d", r, tc.code)
				}
				got := maps.Clone(hs.lastProps())
				if tc.want[PropertyCorrelationID] == "<generated>" {
					if cid := r.headers[CorrelationHeader]; cid == "" || got[PropertyCorrelationID] != cid {
						t.Fatalf("correlation id property %q, response header %q", got[PropertyCorrelationID], cid)
					}
					got[PropertyCorrelationID] = "<generated>"
				}
				if !maps.Equal(got, tc.want) {
					t.Fatalf("properties %v, want %v", got, tc.want)
				}
			})
		}
	})
}

// TestStreamPropertiesBeforeCallouts checks that a command's domain, root
// and correlation id are set before its first callout, so the proxy's
// callout spans can carry them.
func TestStreamPropertiesBeforeCallouts(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		hs := newHarnessIn(t, mode, counterConfig)
		var atLoad map[string]string
		hs.beforeCall = func(c *fakeCall) bool {
			if c.method == "Load" && atLoad == nil {
				atLoad = maps.Clone(hs.h.stream(c.stream).props)
			}
			return true
		}
		wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
		if atLoad[PropertyDomain] != "counter" || atLoad[PropertyRoot] == "" || atLoad[PropertyCorrelationID] == "" {
			t.Fatalf("properties at the Load callout: %v", atLoad)
		}
		if _, ok := atLoad[PropertyOutcome]; ok {
			t.Fatalf("outcome recorded before the command finished: %v", atLoad)
		}
	})
}

// TestSetPropertyRefusedOnRoot checks the fake host refuses properties on
// the root context, as Envoy and wasmhost do.
func TestSetPropertyRefusedOnRoot(t *testing.T) {
	h := newFakeHost()
	if err := h.SetProperty(PropertyOutcome, "ok"); err == nil {
		t.Fatal("root context accepted a property")
	}
}
