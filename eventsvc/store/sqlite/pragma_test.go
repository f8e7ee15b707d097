package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestDurabilitySettings: the writer runs in WAL mode with synchronous=FULL
// and takes the write lock when a transaction begins.
func TestDurabilitySettings(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "e.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mode string
	var sync int
	if err := s.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 {
		t.Fatalf("journal_mode %q synchronous %d, want wal and 2 (FULL)", mode, sync)
	}
	if err := s.r.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("reader synchronous %d, %v", sync, err)
	}
}
