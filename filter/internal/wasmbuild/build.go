//go:build !wasip1

// Package wasmbuild builds the filter's .wasm for tests and benchmarks, the
// way `make filter` does, into a directory the caller owns.
package wasmbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Package is the filter's main package.
const Package = "github.com/angzarr-mesh/angzarr/filter/cmd/angzarr-filter"

// Build compiles the filter into dir/angzarr-filter.wasm and returns the
// path. It must run inside the module (any test's working directory is).
func Build(dir string) (string, error) {
	out := filepath.Join(dir, "angzarr-filter.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, Package)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build filter: %v\n%s", err, b)
	}
	return out, nil
}

// Run is a TestMain body for packages that need the built filter: it builds
// it into a temp dir, stores the module's path in *path, runs the tests and
// returns the exit code for os.Exit.
func Run(m *testing.M, path *string) int {
	dir, err := os.MkdirTemp("", "angzarr-filter-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *path, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
