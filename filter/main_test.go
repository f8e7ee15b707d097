//go:build !wasip1

package filter_test

import (
	"os"
	"testing"

	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
)

// TestMain removes the filter module the wasm-mode scenarios and the
// benchmarks build (once, when the first asks).
func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }
