package endpoints

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "angzarr dev") {
		t.Fatalf("no file: %v", err)
	}
	in := &File{PID: 7, EventService: "127.0.0.1:1", EventServiceMetrics: "127.0.0.1:4", Domains: map[string]Domain{"order": {Coordinator: "127.0.0.1:2", Logic: "127.0.0.1:3", Language: "go"}}}
	if err := Write(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.PID != 7 || out.EventService != "127.0.0.1:1" || out.EventServiceMetrics != "127.0.0.1:4" || out.ControlPlaneMetrics != "" {
		t.Errorf("read %+v", out)
	}
	if a, err := out.Coordinator("order"); err != nil || a != "127.0.0.1:2" {
		t.Errorf("order: %q %v", a, err)
	}
	if _, err := out.Coordinator("billing"); err == nil || !strings.Contains(err.Error(), "[order]") {
		t.Errorf("billing: %v", err)
	}
}

// TestReadsFilesOfOlderMeshes reads a file written before the metrics
// endpoints were listed: the new fields are empty, the rest is there.
func TestReadsFilesOfOlderMeshes(t *testing.T) {
	dir := t.TempDir()
	old := `{"pid": 9, "dataDir": "/d", "eventService": "127.0.0.1:13100", "controlPlane": "127.0.0.1:13101",
  "domains": {"order": {"coordinator": "127.0.0.1:13114", "admin": "127.0.0.1:13124", "logic": "127.0.0.1:13134", "language": "go"}}}`
	if err := os.WriteFile(Path(dir), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.EventService != "127.0.0.1:13100" || f.ControlPlane != "127.0.0.1:13101" || f.EventServiceMetrics != "" || f.ControlPlaneMetrics != "" {
		t.Errorf("read %+v", f)
	}
	if a, err := f.Coordinator("order"); err != nil || a != "127.0.0.1:13114" {
		t.Errorf("order: %q %v", a, err)
	}
}
