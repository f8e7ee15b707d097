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
		{name: "unknown key", in: `{"domain":"order"}`, wantErr: []string{"unknown field", "domain"}},
		{name: "key in the wrong case", in: `{"Domains":["order"]}`, wantErr: []string{"unknown field", "Domains", "case-sensitive"}},
		{name: "trailing data", in: `{} {}`, wantErr: []string{"trailing"}},
		{name: "bad duration", in: `{"event_service_timeout":"soon"}`, wantErr: []string{"duration"}},
		{name: "numeric duration refused", in: `{"event_service_timeout":5}`, wantErr: []string{"string"}},
		{name: "all problems at once", in: `{"domains":["a","","a"],"max_retries":-1,"max_body_bytes":-5}`,
			wantErr: []string{"domains[1]: empty", "domains[2]: duplicate", "max_retries", "max_body_bytes"}},
		{name: "not json", in: `domains: [a]`, wantErr: []string{"plugin configuration"}},
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
