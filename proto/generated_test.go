package proto_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// generatedFiles lists the generated files below root (those whose names
// end in one of suffixes), relative to root.
func generatedFiles(t *testing.T, root string, suffixes ...string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && hasAnySuffix(path, suffixes) {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func hasAnySuffix(s string, suffixes []string) bool {
	for _, suffix := range suffixes {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return false
}

// TestGeneratedCodeIsFresh regenerates every .proto into a temp dir with the
// pinned plugins and fails if the committed code differs: edit the .proto and
// run `make proto`, never edit *.pb.go by hand.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc not found: run `make deps` (installs protobuf-compiler)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	fresh, freshPy := t.TempDir(), t.TempDir()
	cmd := exec.CommandContext(ctx, "../scripts/protogen.sh", fresh, freshPy)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protogen: %v\n%s", err, out)
	}

	compareGenerated(t, ".", fresh, ".pb.go")
	compareGenerated(t, "../examples/python/customer/gen", freshPy, "_pb2.py", "_pb2_grpc.py")
}

// compareGenerated fails the test when the generated files (by suffix) in
// the committed dir differ from those in the fresh dir.
func compareGenerated(t *testing.T, dir, fresh string, suffixes ...string) {
	t.Helper()
	committed, regenerated := generatedFiles(t, dir, suffixes...), generatedFiles(t, fresh, suffixes...)
	if strings.Join(committed, "\n") != strings.Join(regenerated, "\n") {
		t.Fatalf("generated file set differs in %s; run `make proto`\ncommitted:   %v\nregenerated: %v", dir, committed, regenerated)
	}
	if len(committed) == 0 {
		t.Fatalf("no generated code found in %s", dir)
	}
	for _, f := range committed {
		want, err := os.ReadFile(filepath.Join(fresh, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh generation; run `make proto` (never edit generated code by hand)", f)
		}
	}
}
