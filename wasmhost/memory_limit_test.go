package wasmhost

import (
	"context"
	"testing"
)

// growModule is (module (memory 1) (func (export "grow") (param i32)
// (result i32) local.get 0 memory.grow)), hand-assembled.
var growModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type: (i32) -> i32
	0x03, 0x02, 0x01, 0x00, // func 0 of type 0
	0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page, no max
	0x07, 0x08, 0x01, 0x04, 'g', 'r', 'o', 'w', 0x00, 0x00, // export "grow"
	0x0a, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0b, // local.get 0; memory.grow 0
}

// TestMemoryCeiling: a VM's memory cannot grow past 1 GiB, Envoy's limit,
// even when the module declares no maximum: memory.grow answers -1 (which
// the Go runtime of the filter turns into a fatal "out of memory", a trap).
// Growing to exactly the ceiling is not tried: it would allocate 1 GiB.
func TestMemoryCeiling(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, growModule)
	if err != nil {
		t.Fatal(err)
	}
	grow := mod.ExportedFunction("grow")
	if r, err := grow.Call(ctx, 15); err != nil || int32(r[0]) != 1 {
		t.Fatalf("grow 15 pages = %v, %v; want the old size 1", r, err)
	}
	if r, err := grow.Call(ctx, MaxMemoryPages-15); err != nil || int32(r[0]) != -1 {
		t.Fatalf("grow to 1 GiB + 1 page = %v, %v; want -1", r, err)
	}
	if got := mod.Memory().Size(); got != 16*64<<10 {
		t.Fatalf("memory %d bytes after the refused growth, want 16 pages", got)
	}
}
