// Package config is the Angzarr filter's plugin configuration: the JSON that
// Envoy (or `angzarr proxy`) hands to proxy_on_configure. The control plane
// builds it from the topology; the filter decodes it strictly. It is pure Go
// so that both native code and the wasip1 filter share one definition.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// Defaults applied by Decode to fields left out of the JSON.
const (
	DefaultEventServiceCluster  = "angzarr-eventsvc"
	DefaultBusinessLogicCluster = "angzarr-logic"
	DefaultMaxRetries           = 8
	DefaultEventServiceTimeout  = 5 * time.Second
	DefaultBusinessLogicTimeout = 10 * time.Second
	DefaultMaxBodyBytes         = 4 << 20
)

// Config is the filter's plugin configuration for one workload.
type Config struct {
	// Domains this workload serves; commands for any other domain are
	// rejected with INVALID_ARGUMENT. Empty means pass-through: the filter
	// lets every request through untouched (a workload without a domain).
	Domains []string `json:"domains,omitempty"`
	// EventServiceCluster is the Envoy cluster of the event service
	// (angzarr.EventStore over HTTP/2). Default "angzarr-eventsvc".
	EventServiceCluster string `json:"event_service_cluster,omitempty"`
	// BusinessLogicCluster is the cluster of the local business logic, used
	// for callouts when a write conflict makes the filter re-run the logic.
	// Default "angzarr-logic".
	BusinessLogicCluster string `json:"business_logic_cluster,omitempty"`
	// MaxRetries bounds the reload-and-retry loop of auto_resequence
	// commands on write conflicts. Default 8; 0 after decoding means default.
	MaxRetries int `json:"max_retries,omitempty"`
	// EventServiceTimeout bounds each event-service callout. Default 5s.
	EventServiceTimeout Duration `json:"event_service_timeout,omitempty"`
	// BusinessLogicTimeout bounds each business-logic callout. Default 10s.
	BusinessLogicTimeout Duration `json:"business_logic_timeout,omitempty"`
	// MaxBodyBytes is the largest request or response body the filter
	// buffers; larger ones are refused with RESOURCE_EXHAUSTED. Default 4 MiB.
	MaxBodyBytes int `json:"max_body_bytes,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("250ms", "5s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Decode parses the plugin configuration strictly (unknown keys and trailing
// data are errors), applies defaults and validates it. An empty input is a
// valid pass-through configuration.
func Decode(raw []byte) (*Config, error) {
	c := &Config{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := checkKeys(raw); err != nil {
			return nil, fmt.Errorf("plugin configuration: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("plugin configuration: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("plugin configuration: trailing data after the JSON object")
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("plugin configuration: %w", err)
	}
	return c, nil
}

// checkKeys refuses keys that differ from a field name only by case, which
// encoding/json would otherwise accept.
func checkKeys(raw []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil // not an object: the strict decoder reports it
	}
	known := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	var errs []error
	for k := range keys {
		if !known[k] {
			errs = append(errs, fmt.Errorf("json: unknown field %q (names are case-sensitive)", k))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) applyDefaults() {
	if c.EventServiceCluster == "" {
		c.EventServiceCluster = DefaultEventServiceCluster
	}
	if c.BusinessLogicCluster == "" {
		c.BusinessLogicCluster = DefaultBusinessLogicCluster
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.EventServiceTimeout == 0 {
		c.EventServiceTimeout = Duration(DefaultEventServiceTimeout)
	}
	if c.BusinessLogicTimeout == 0 {
		c.BusinessLogicTimeout = Duration(DefaultBusinessLogicTimeout)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range c.Domains {
		switch {
		case d == "":
			errs = append(errs, fmt.Errorf("domains[%d]: empty domain name", i))
		case seen[d]:
			errs = append(errs, fmt.Errorf("domains[%d]: duplicate domain %q", i, d))
		}
		seen[d] = true
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max_retries: must be >= 0, got %d", c.MaxRetries))
	}
	if c.EventServiceTimeout < 0 {
		errs = append(errs, errors.New("event_service_timeout: must be positive"))
	}
	if c.BusinessLogicTimeout < 0 {
		errs = append(errs, errors.New("business_logic_timeout: must be positive"))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes: must be positive, got %d", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}

// Serves reports whether the workload serves the domain.
func (c *Config) Serves(domain string) bool {
	for _, d := range c.Domains {
		if d == domain {
			return true
		}
	}
	return false
}

// PassThrough reports whether the workload serves no domain, so the filter
// must leave every request alone.
func (c *Config) PassThrough() bool { return len(c.Domains) == 0 }
