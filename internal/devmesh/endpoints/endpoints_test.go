package endpoints

import (
	"errors"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "angzarr dev") {
		t.Fatalf("no file: %v", err)
	}
	in := &File{PID: 7, EventService: "127.0.0.1:1", Domains: map[string]Domain{"order": {Coordinator: "127.0.0.1:2", Logic: "127.0.0.1:3", Language: "go"}}}
	if err := Write(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.PID != 7 || out.EventService != "127.0.0.1:1" {
		t.Errorf("read %+v", out)
	}
	if a, err := out.Coordinator("order"); err != nil || a != "127.0.0.1:2" {
		t.Errorf("order: %q %v", a, err)
	}
	if _, err := out.Coordinator("billing"); err == nil || !strings.Contains(err.Error(), "[order]") {
		t.Errorf("billing: %v", err)
	}
}
