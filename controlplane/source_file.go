package controlplane

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// DefaultPollInterval is how often the topology file is checked.
const DefaultPollInterval = 200 * time.Millisecond

// watchFile calls fn with the file's content when first read and whenever
// it changes afterwards, until ctx is done. Changes are detected by reading
// the file and comparing a content hash every interval (topologies are
// small), which catches in-place writes within one mtime tick, atomic
// renames (editors, Kubernetes ConfigMap symlink swaps) and recreated files
// alike. A read error is reported once per distinct error and retried.
func watchFile(ctx context.Context, path string, interval time.Duration, fn func(data []byte, err error)) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	var (
		lastSum [sha256.Size]byte
		lastErr string
		seen    bool
	)
	check := func() {
		data, err := os.ReadFile(path)
		if err != nil {
			if err.Error() != lastErr {
				lastErr = err.Error()
				fn(nil, err)
			}
			return
		}
		lastErr = ""
		sum := sha256.Sum256(data)
		if seen && sum == lastSum {
			return
		}
		seen, lastSum = true, sum
		fn(data, nil)
	}
	check()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}
