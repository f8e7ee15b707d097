package config

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts is valid and
// survives a JSON round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"domains":["order"],"max_retries":3,"event_service_timeout":"250ms","max_body_bytes":1024}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"domains":[""]}`))
	f.Add([]byte(`{"domains":["order"],"sync_projectors":[{"name":"p","cluster":"c"}],"sagas":[{"name":"s","cluster":"c","targets":["x"]}],` +
		`"coordinators":{"x":"cx"},"max_cascade_depth":3,"cascade_timeout":"1s","snapshot_every":10}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Decode(raw)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid configuration: %v", err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if len(c.Domains) == 0 {
			c.Domains = nil
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed %+v into %+v", c, again)
		}
	})
}
