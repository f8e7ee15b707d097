package redis

import (
	"strings"
	"testing"
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
