package redis

import (
	"errors"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

func TestSettingWarnings(t *testing.T) {
	safe := map[string]string{"appendonly": "yes", "appendfsync": "always", "min-replicas-to-write": "1", "cluster-node-timeout": "5000"}
	if w := settingWarnings(safe, 1, true); len(w) != 0 {
		t.Fatalf("safe settings: %q", w)
	}
	unsafe := map[string]string{"appendonly": "no", "appendfsync": "everysec", "min-replicas-to-write": "0", "cluster-node-timeout": "60000"}
	w := strings.Join(settingWarnings(unsafe, 1, true), "\n")
	for _, name := range []string{"appendonly no", "appendfsync everysec", "min-replicas-to-write 0", "cluster-node-timeout 60000"} {
		if !strings.Contains(w, name) {
			t.Errorf("no warning names %q:\n%s", name, w)
		}
	}
	// Without replicas to wait for, min-replicas-to-write is not asked
	// for; settings the server did not report are not judged.
	if w := settingWarnings(map[string]string{"min-replicas-to-write": "0"}, 0, false); len(w) != 0 {
		t.Fatalf("min replicas 0: %q", w)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"7.0.15": false, "7.2.0": true, "7.4.1": true, "8.0.0": true, "6.2.14": false, "": false, "x.y": false} {
		if got := versionAtLeast(v, 7, 2); got != want {
			t.Errorf("%q at least 7.2: %v, want %v", v, got, want)
		}
	}
	if got := confirmKey("az:log:{d:3}"); got != "az:confirm:{d:3}" {
		t.Errorf("confirm key: %q", got)
	}
}

// TestNotRunRepliesAreUnavailable: a server reply that means the command
// did not run, NOSCRIPT among them (a master promoted by a failover has no
// script cached, and loading it there can fail too while the cluster
// settles), is store.ErrUnavailable, so a writer retries it; another
// error reply is not.
func TestNotRunRepliesAreUnavailable(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: testredis.Start(t)})
	defer c.Close()
	noscript := c.EvalSha(t.Context(), strings.Repeat("0", 40), []string{"k"}).Err()
	if noscript == nil || !strings.HasPrefix(noscript.Error(), "NOSCRIPT") {
		t.Fatalf("EVALSHA of an unknown script: %v", noscript)
	}
	if err := wrap("append", noscript); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("NOSCRIPT: %v, want unavailable", err)
	}
	other := c.Do(t.Context(), "NOSUCHCOMMAND").Err()
	if err := wrap("append", other); other == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("an unknown command: %v, want an internal error", err)
	}
}
