//go:build !wasip1

// Package wasmbuild is the one recipe that builds the filter's .wasm for
// tests and benchmarks, the way `make filter` does, and compiles it into
// wasmhost's process-wide compilation cache once per test binary.
//
// Compiling the 4 MB module in wazero takes seconds, and over a minute
// under the race detector on a busy 2-core machine. A test binary therefore
// builds and compiles the module before its tests start (Run, in TestMain)
// or the first time a test asks for it (Filter), never inside a wait with a
// bound: every later wasmhost.New and UpdatePlugin of the same bytes finds
// it compiled.
package wasmbuild

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// Package is the filter's main package.
const Package = "github.com/angzarr-mesh/angzarr/filter/cmd/angzarr-filter"

// Build compiles the filter into dir/angzarr-filter.wasm, exactly as `make
// filter` does, and returns the path. It must run inside the module (any
// test's working directory is).
//
// It first reads every Go source of the filter from this process: go test
// keys its cached result on the files a test opens, and the module's
// wasip1-only packages (the guest binding, the entry point) are not in the
// test binary, so without this a changed binding would not rerun the tests
// that run the module.
func Build(dir string) (string, error) {
	if err := consultFilterSources(); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "angzarr-filter.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, Package)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build filter: %v\n%s", err, b)
	}
	return out, nil
}

// consultFilterSources reads the .go files under filter/ (found from this
// source file's own path; tests are not built with -trimpath).
func consultFilterSources() error {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil
	}
	root := filepath.Join(filepath.Dir(self), "..", "..", "filter")
	if _, err := os.Stat(root); err != nil {
		return nil // built with -trimpath: nothing to key on
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		_, err = os.ReadFile(p)
		return err
	})
}

var (
	built      sync.Once
	dir, path  string
	module     []byte
	buildErr   error
	compiled   sync.Once
	compileErr error
)

// build builds the filter once per test binary into a temp dir (removed by
// Cleanup).
func build() (string, error) {
	built.Do(func() {
		if dir, buildErr = os.MkdirTemp("", "angzarr-filter-*"); buildErr != nil {
			return
		}
		if path, buildErr = Build(dir); buildErr != nil {
			return
		}
		module, buildErr = os.ReadFile(path)
	})
	return path, buildErr
}

// buildAndCompile builds the filter once and compiles it once into
// wasmhost's shared compilation cache.
func buildAndCompile() (string, error) {
	p, err := build()
	if err != nil {
		return "", err
	}
	compiled.Do(func() { compileErr = wasmhost.Precompile(context.Background(), module) })
	return p, compileErr
}

// Module returns the bytes of the filter built once for this test binary,
// for tests that run it on another runtime than wasmhost (wasmdrive). The
// slice is shared: do not modify it.
func Module(tb testing.TB) []byte {
	tb.Helper()
	if _, err := build(); err != nil {
		tb.Fatal(err)
	}
	return module
}

// Filter returns the path of the filter built and compiled once for this
// test binary. Call it before starting anything that waits for a proxy to
// load the filter.
func Filter(tb testing.TB) string {
	tb.Helper()
	p, err := buildAndCompile()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Cleanup removes what Filter or Run built; TestMain calls it after m.Run.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Main is a TestMain body for packages that build the filter only when a
// test asks for it (Filter, Module): it runs the tests, then removes what
// was built.
func Main(m *testing.M) int {
	defer Cleanup()
	return m.Run()
}

// Run is a TestMain body for packages that need the built filter: it builds
// and compiles it before any test starts, stores the module's path in *p,
// runs the tests and returns the exit code for os.Exit.
func Run(m *testing.M, p *string) int {
	defer Cleanup()
	var err error
	if *p, err = buildAndCompile(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
