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

// generatedFiles lists the generated Go files below root, relative to it.
func generatedFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".pb.go") {
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

// TestGeneratedCodeIsFresh regenerates every .proto into a temp dir with the
// pinned plugins and fails if the committed code differs: edit the .proto and
// run `make proto`, never edit *.pb.go by hand.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc not found: run `make deps` (installs protobuf-compiler)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	fresh := t.TempDir()
	cmd := exec.CommandContext(ctx, "../scripts/protogen.sh", fresh)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protogen: %v\n%s", err, out)
	}

	committed, regenerated := generatedFiles(t, "."), generatedFiles(t, fresh)
	if strings.Join(committed, "\n") != strings.Join(regenerated, "\n") {
		t.Fatalf("generated file set differs; run `make proto`\ncommitted:   %v\nregenerated: %v", committed, regenerated)
	}
	if len(committed) == 0 {
		t.Fatal("no generated code found")
	}
	for _, f := range committed {
		want, err := os.ReadFile(filepath.Join(fresh, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh generation; run `make proto` (never edit generated code by hand)", f)
		}
	}
}
