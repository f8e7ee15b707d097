package fanout_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

const fanoutYAML = `
version: v1
subscriptions:
  - name: order-summary
    kind: SUBSCRIBER_KIND_PROJECTOR
    address: 127.0.0.1:7001
    source_domains: [order, fulfillment]
  - name: loyalty-earn
    kind: SUBSCRIBER_KIND_SAGA
    address: 127.0.0.1:7002
    sourceDomains: [order]
    targetDomains: [customer]
    start_position: START_POSITION_EARLIEST
domains:
  - {domain: customer, address: 127.0.0.1:7003}
`

// TestFileSourceAppliesAndReloads: the file is read as YAML (proto and
// JSON field names), applied, and applied again when its content changes;
// an invalid change is not applied.
func TestFileSourceAppliesAndReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fanout.yaml")
	if err := os.WriteFile(path, []byte(fanoutYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := fanout.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.GetSubscriptions()) != 2 || cfg.GetSubscriptions()[1].GetTargetDomains()[0] != "customer" ||
		cfg.GetSubscriptions()[1].GetStartPosition() != pb.StartPosition_START_POSITION_EARLIEST || cfg.GetDomains()[0].GetAddress() != "127.0.0.1:7003" {
		t.Fatalf("loaded %v", cfg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	applied := make(chan *pb.FanoutConfig, 10)
	done := make(chan error, 1)
	src := fanout.FileSource{Path: path, Interval: 10 * time.Millisecond, Logger: testLogger(t)}
	go func() {
		done <- src.Run(ctx, func(c *pb.FanoutConfig) error { applied <- c; return nil })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	next := func(what string) *pb.FanoutConfig {
		t.Helper()
		select {
		case c := <-applied:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("no configuration applied: %s", what)
			return nil
		}
	}
	if c := next("first"); c.GetVersion() != "v1" {
		t.Fatalf("first configuration %v", c)
	}
	if err := os.WriteFile(path, []byte("subscriptions: [{name: 'bad name'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(fanoutYAML, "version: v1", "version: v2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := next("after the change"); c.GetVersion() != "v2" {
		t.Fatalf("after the change %v (an invalid configuration was applied?)", c)
	}
}

// TestBadConfigurations: unknown fields, invalid names, kinds, addresses
// and duplicates are refused with every problem named, and an event
// service with a bad fan-out file does not start.
func TestBadConfigurations(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"subscriptions: [{name: a, colour: red}]", "colour"},
		{"subscriptions: [{name: 'a b', kind: SUBSCRIBER_KIND_SAGA, address: x, source_domains: [o]}]", "subscriptions[0].name"},
		{"subscriptions: [{name: a, address: x, source_domains: [o]}]", "kind"},
		{"subscriptions: [{name: a, kind: SUBSCRIBER_KIND_PROJECTOR, source_domains: [o]}]", "address: required"},
		{"subscriptions: [{name: a, kind: SUBSCRIBER_KIND_PROJECTOR, address: x}]", "source_domains: at least one"},
		{"subscriptions: [{name: a, kind: SUBSCRIBER_KIND_PROJECTOR, address: x, source_domains: [o], target_domains: [c]}]", "a projector sends no commands"},
		{"subscriptions: [{name: a, kind: SUBSCRIBER_KIND_SAGA, address: x, source_domains: [o]}, {name: a, kind: SUBSCRIBER_KIND_SAGA, address: x, source_domains: [o]}]", "appears twice"},
		{"subscriptions: [{name: a, kind: SUBSCRIBER_KIND_SAGA, address: x, source_domains: [o], compensation_fallback: [COMPENSATION_ACTION_UNSPECIFIED]}]", "subscriptions[0].compensation_fallback[0]: not an action"},
		{"subscriptions: [{name: a, kind: SUBSCRIBER_KIND_SAGA, address: x, source_domains: [o], compensation_fallback: [7]}]", "compensation_fallback[0]: not an action"},
		{"subscriptions: [{name: a, kind: SUBSCRIBER_KIND_PROJECTOR, address: x, source_domains: [o], compensation_fallback: [COMPENSATION_ACTION_STOP]}]", "only sagas and process managers compensate"},
		{"failure_domain: 'no good'", "failure_domain"},
		{"domains: [{domain: c}]", "domains[0].address"},
	} {
		path := filepath.Join(dir, "f.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := fanout.LoadFile(path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.yaml, err, tc.want)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = eventsvc.Serve(ctx, lis, eventsvc.Config{Store: "sqlite:" + filepath.Join(dir, "e.db"), Fanout: filepath.Join(dir, "f.yaml"), Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "domains[0].address") {
		t.Fatalf("eventsvc with a bad fan-out file: %v", err)
	}
	if err := (eventsvc.Config{Store: "sqlite:x", FanoutMaxAttempts: -1, FanoutBackoff: time.Second, FanoutBackoffMax: time.Millisecond}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "max attempts") || !strings.Contains(err.Error(), "below the backoff") {
		t.Fatalf("config validation: %v", err)
	}
	for _, hook := range []string{"ftp://example.com/x", "not a url", "http://"} {
		if err := (eventsvc.Config{Store: "sqlite:x", FanoutEscalationWebhook: hook}).Validate(); err == nil || !strings.Contains(err.Error(), "escalation webhook") {
			t.Errorf("escalation webhook %q: %v", hook, err)
		}
	}
}
