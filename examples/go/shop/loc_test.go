package shop_test

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestLOCTableIsFresh fails when the business logic changed and the LOC
// table in examples/README.md was not regenerated (scripts/loc.py --update).
func TestLOCTableIsFresh(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "scripts/loc.py", "--check", "examples/README.md")
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
