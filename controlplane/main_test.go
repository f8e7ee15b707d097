package controlplane_test

import (
	"os"
	"testing"

	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
)

// TestMain removes the filter module the end-to-end tests build (once,
// when the first asks).
func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }
