package fanout

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// FileSource reads the fan-out configuration from a file, an
// angzarr.FanoutConfig in YAML or protojson (field names as in the proto or
// in lowerCamelCase, enums by name; unknown fields are errors), and applies
// it again whenever the file's content changes.
//
//	subscriptions:
//	  - name: order-summary
//	    kind: SUBSCRIBER_KIND_PROJECTOR
//	    address: order-summary:50051
//	    source_domains: [order, fulfillment]
//	domains:
//	  - {domain: customer, address: customer:50051}
type FileSource struct {
	// Path is the file.
	Path string
	// Interval is how often the file is checked for changes. Default 1s.
	Interval time.Duration
	// Logger receives reload errors. Default slog.Default().
	Logger *slog.Logger
}

// LoadFile reads and validates a fan-out configuration file.
func LoadFile(path string) (*pb.FanoutConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	return parse(path, raw)
}

func parse(path string, raw []byte) (*pb.FanoutConfig, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("fanout: %s: %w", path, err)
	}
	cfg := &pb.FanoutConfig{}
	if err := protojson.Unmarshal(js, cfg); err != nil {
		return nil, fmt.Errorf("fanout: %s: %w", path, err)
	}
	if err := Validate(cfg); err != nil {
		return nil, fmt.Errorf("fanout: %s: %w", path, err)
	}
	return cfg, nil
}

// Run implements Source.
func (f FileSource) Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error {
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}
	interval := f.Interval
	if interval <= 0 {
		interval = time.Second
	}
	last, err := os.ReadFile(f.Path)
	if err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	cfg, err := parse(f.Path, last)
	if err != nil {
		return err
	}
	if err := apply(cfg); err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		raw, err := os.ReadFile(f.Path)
		if err != nil {
			log.Warn("fanout: configuration file unreadable, keeping the current one", "path", f.Path, "err", err)
			continue
		}
		if bytes.Equal(raw, last) {
			continue
		}
		last = raw
		cfg, err := parse(f.Path, raw)
		if err == nil {
			err = apply(cfg)
		}
		if err != nil {
			log.Warn("fanout: configuration not applied, keeping the current one", "path", f.Path, "err", err)
		}
	}
}
