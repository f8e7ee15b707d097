package config

import (
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr []string // every fragment must appear in the error
		check   func(t *testing.T, c *Config)
	}{
		{name: "empty is pass-through with defaults", in: "", check: func(t *testing.T, c *Config) {
			if !c.PassThrough() || c.MaxRetries != DefaultMaxRetries || c.EventServiceCluster != DefaultEventServiceCluster ||
				time.Duration(c.EventServiceTimeout) != DefaultEventServiceTimeout || c.MaxBodyBytes != DefaultMaxBodyBytes {
				t.Fatalf("defaults not applied: %+v", c)
			}
		}},
		{name: "full", in: `{"domains":["order","cart"],"event_service_cluster":"es","business_logic_cluster":"logic",
			"max_retries":3,"event_service_timeout":"250ms","business_logic_timeout":"2s","max_body_bytes":1024}`,
			check: func(t *testing.T, c *Config) {
				if !c.Serves("cart") || c.Serves("customer") || c.PassThrough() {
					t.Fatalf("domains: %+v", c.Domains)
				}
				if c.MaxRetries != 3 || time.Duration(c.EventServiceTimeout) != 250*time.Millisecond ||
					time.Duration(c.BusinessLogicTimeout) != 2*time.Second || c.MaxBodyBytes != 1024 || c.EventServiceCluster != "es" {
					t.Fatalf("fields: %+v", c)
				}
			}},
		{name: "Istio cluster names need authorities",
			in: `{"domains":["order"],"event_service_cluster":"outbound|1313||es.ns.svc.cluster.local","business_logic_cluster":"inbound|50051||",
			"coordinators":{"cart":"outbound|50051||cart.ns.svc.cluster.local"},"sagas":[{"name":"s","cluster":"outbound|9||s.ns","targets":["cart"]}]}`,
			wantErr: []string{"event_service_cluster: cluster \"outbound|1313||es.ns.svc.cluster.local\" is no valid :authority",
				"business_logic_cluster", `coordinators["cart"]`, "sagas[0].cluster"}},
		{name: "Istio cluster names with authorities",
			in: `{"domains":["order"],"event_service_cluster":"outbound|1313||es.ns.svc.cluster.local","business_logic_cluster":"inbound|50051||",
			"authorities":{"outbound|1313||es.ns.svc.cluster.local":"es.ns.svc.cluster.local","inbound|50051||":"order.ns.svc.cluster.local"}}`,
			check: func(t *testing.T, c *Config) {
				if a := c.Authority(c.EventServiceCluster); a != "es.ns.svc.cluster.local" {
					t.Fatalf("authority = %q", a)
				}
				if a := c.Authority("angzarr-logic"); a != "" {
					t.Fatalf("authority of an unlisted cluster = %q", a)
				}
			}},
		{name: "invalid authority", in: `{"authorities":{"es":"a|b","":"x"}}`,
			wantErr: []string{`authorities["es"]: "a|b" is no valid :authority`, "authorities: empty cluster name"}},
		{name: "unknown key", in: `{"domain":"order"}`, wantErr: []string{"unknown field", "domain"}},
		{name: "key in the wrong case", in: `{"Domains":["order"]}`, wantErr: []string{"unknown field", "Domains", "case-sensitive"}},
		{name: "trailing data", in: `{} {}`, wantErr: []string{"trailing"}},
		{name: "bad duration", in: `{"event_service_timeout":"soon"}`, wantErr: []string{"duration"}},
		{name: "numeric duration refused", in: `{"event_service_timeout":5}`, wantErr: []string{"string"}},
		{name: "all problems at once", in: `{"domains":["a","","a"],"max_retries":-1,"max_body_bytes":-5}`,
			wantErr: []string{"domains[1]: empty", "domains[2]: duplicate", "max_retries", "max_body_bytes"}},
		{name: "not json", in: `domains: [a]`, wantErr: []string{"plugin configuration"}},
		{name: "sync defaults", in: `{"domains":["order"]}`, check: func(t *testing.T, c *Config) {
			if c.MaxCascadeDepth != DefaultMaxCascadeDepth || time.Duration(c.ProjectorTimeout) != DefaultProjectorTimeout ||
				time.Duration(c.SagaTimeout) != DefaultSagaTimeout || time.Duration(c.CascadeTimeout) != DefaultCascadeTimeout {
				t.Fatalf("sync defaults not applied: %+v", c)
			}
		}},
		{name: "sync fields", in: `{"domains":["order"],"sync_projectors":[{"name":"order-summary","cluster":"p"}],
			"sagas":[{"name":"loyalty-earn","cluster":"s","targets":["customer"]}],"coordinators":{"customer":"c"},
			"max_cascade_depth":3,"projector_timeout":"1s","saga_timeout":"2s","cascade_timeout":"3s","snapshot_every":100}`,
			check: func(t *testing.T, c *Config) {
				if len(c.SyncProjectors) != 1 || c.SyncProjectors[0].Cluster != "p" || !c.Sagas[0].MayTarget("customer") ||
					c.Sagas[0].MayTarget("order") || c.MaxCascadeDepth != 3 || time.Duration(c.CascadeTimeout) != 3*time.Second ||
					c.SnapshotEvery != 100 {
					t.Fatalf("fields: %+v", c)
				}
				if cl, ok := c.Coordinator("customer"); !ok || cl != "c" {
					t.Fatalf("coordinator: %q %v", cl, ok)
				}
				if _, ok := c.Coordinator("order"); ok {
					t.Fatal("coordinator for order")
				}
			}},
		{name: "retry back-off defaults", in: `{"domains":["order"]}`, check: func(t *testing.T, c *Config) {
			if base, most := c.RetryBackoffs(); base != DefaultRetryBackoff || most != DefaultRetryBackoffMax || c.RetryBackoff != 0 {
				t.Fatalf("retry back-off %v..%v (field %v), want the defaults, not written into the configuration", base, most, c.RetryBackoff)
			}
		}},
		{name: "retry back-off", in: `{"domains":["order"],"retry_backoff":"1ms","retry_backoff_max":"1s"}`, check: func(t *testing.T, c *Config) {
			if base, most := c.RetryBackoffs(); base != time.Millisecond || most != time.Second {
				t.Fatalf("retry back-off %v..%v", base, most)
			}
		}},
		{name: "retry back-off beyond the event service's limit", in: `{"retry_backoff_max":"2s"}`, wantErr: []string{"retry_backoff_max 2s: must be between 0 and 1s"}},
		{name: "retry back-off alone beyond the limit", in: `{"retry_backoff":"1500ms"}`, wantErr: []string{"retry_backoff 1.5s"}},
		{name: "retry back-off above its cap", in: `{"retry_backoff":"300ms","retry_backoff_max":"100ms"}`, wantErr: []string{"retry_backoff 300ms: above retry_backoff_max 100ms"}},
		{name: "aggregate cache default", in: `{"domains":["order"]}`, check: func(t *testing.T, c *Config) {
			if c.AggregateCacheBytes != DefaultAggregateCacheBytes {
				t.Fatalf("aggregate_cache_bytes %d, want %d", c.AggregateCacheBytes, DefaultAggregateCacheBytes)
			}
		}},
		{name: "aggregate cache off", in: `{"domains":["order"],"aggregate_cache_bytes":-1}`, check: func(t *testing.T, c *Config) {
			if c.AggregateCacheBytes != -1 {
				t.Fatalf("aggregate_cache_bytes %d, want -1", c.AggregateCacheBytes)
			}
		}},
		{name: "aggregate cache out of range", in: `{"aggregate_cache_bytes":-2}`, wantErr: []string{"aggregate_cache_bytes: must be -1 (off)"}},
		{name: "aggregate cache near the VM's 1 GiB ceiling", in: `{"aggregate_cache_bytes":536870912}`, wantErr: []string{"aggregate_cache_bytes: must be -1 (off) or between 1 and 268435456"}},
		{name: "nested key in the wrong case", in: `{"sagas":[{"Name":"x","cluster":"c","targets":["a"]}],"coordinators":{"a":"b"}}`,
			wantErr: []string{"sagas[0].Name", "case-sensitive"}},
		{name: "nested unknown key", in: `{"sync_projectors":[{"name":"x","cluster":"c","domains":["a"]}]}`,
			wantErr: []string{"sync_projectors[0].domains"}},
		{name: "event types", in: `{"domains":["order"],"event_types":{"order":["examples.OrderCreated","examples.v2.OrderCompleted"]}}`,
			check: func(t *testing.T, c *Config) {
				if got := c.EventTypesOf("order"); len(got) != 2 || got[1] != "examples.v2.OrderCompleted" || c.EventTypesOf("cart") != nil {
					t.Fatalf("event types %v", c.EventTypes)
				}
			}},
		{name: "event types problems at once", in: `{"domains":["order"],"event_types":{"cart":["a.B"],"order":["a.B","a.B","1a.B","a..B","a.B.","type.googleapis.com/a.B",""]}}`,
			wantErr: []string{`event_types["cart"]: not a served domain`, `event_types["order"][1]: duplicate type "a.B"`,
				`event_types["order"][2]: "1a.B" is not a protobuf full message name`, `[3]: "a..B"`, `[4]: "a.B."`,
				`[5]: "type.googleapis.com/a.B"`, `[6]: ""`}},
		{name: "sync problems at once", in: `{"sync_projectors":[{"name":"","cluster":""},{"name":"a","cluster":"c"},{"name":"a","cluster":"c"}],
			"sagas":[{"name":"s","cluster":"","targets":[]},{"name":"t","cluster":"c","targets":["nowhere"]}],"coordinators":{"x":""},
			"max_cascade_depth":65,"saga_timeout":"-1s","snapshot_every":-1}`,
			wantErr: []string{"sync_projectors[0]: empty name", "sync_projectors[0] (): empty cluster", "sync_projectors[2]: duplicate",
				"sagas[0] (s): empty cluster", "sagas[0] (s): no target", "sagas[1] (t): target domain \"nowhere\" has no entry",
				"coordinators: domain \"x\"", "max_cascade_depth", "saga_timeout", "snapshot_every"}},
		{name: "process managers", in: `{"process_managers":[{"name":"checkout","targets":["order"]}],"coordinators":{"order":"c"}}`,
			check: func(t *testing.T, c *Config) {
				if len(c.ProcessManagers) != 1 || !c.ProcessManagers[0].MayTarget("order") || c.ProcessManagers[0].MayTarget("cart") {
					t.Fatalf("process managers: %+v", c.ProcessManagers)
				}
			}},
		{name: "process manager problems", in: `{"process_managers":[{"name":"","targets":[]},{"name":"p","targets":["nowhere"]},{"name":"p","targets":["a"]}],"coordinators":{"a":"b"}}`,
			wantErr: []string{"process_managers[0]: empty name", "process_managers[0] (): no target", "process_managers[1] (p): target domain \"nowhere\" has no entry",
				"process_managers[2]: duplicate"}},
		{name: "process manager key in the wrong case", in: `{"process_managers":[{"Name":"p","targets":["a"]}],"coordinators":{"a":"b"}}`,
			wantErr: []string{"process_managers[0].Name", "case-sensitive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode([]byte(tt.in))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("want error containing %q, got config %+v", tt.wantErr, c)
				}
				for _, frag := range tt.wantErr {
					if !strings.Contains(err.Error(), frag) {
						t.Errorf("error %q lacks %q", err, frag)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestDurationRoundTrip(t *testing.T) {
	b, err := Duration(1500 * time.Millisecond).MarshalJSON()
	if err != nil || string(b) != `"1.5s"` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var d Duration
	if err := d.UnmarshalJSON(b); err != nil || time.Duration(d) != 1500*time.Millisecond {
		t.Fatalf("unmarshal: %v %v", d, err)
	}
}
