package shop_test

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestLOCTableIsFresh fails when the business logic changed and the LOC
// tables in examples/README.md and README.md were not regenerated
// (scripts/loc.py --update FILE).
func TestLOCTableIsFresh(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, doc := range []string{"examples/README.md", "README.md"} {
		cmd := exec.CommandContext(ctx, python, "scripts/loc.py", "--check", doc)
		cmd.Dir = "../../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", doc, err, out)
		}
	}
}
