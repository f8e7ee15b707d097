//go:build wasip1

package abi

import "unsafe"

// allocations keeps the buffers handed to the host through malloc alive
// (and findable by address) until the filter has read them. The host
// fills one buffer per host call and the filter takes it right away, so
// a short slice searched from the end beats a map.
var allocations []allocation

type allocation struct {
	addr uint32
	buf  []byte
}

// allocate returns a Go buffer of size bytes and its linear-memory address.
func allocate(size uint32) uint32 {
	n := size
	if n == 0 {
		n = 1
	}
	buf := make([]byte, n)
	addr := uint32(uintptr(unsafe.Pointer(&buf[0])))
	allocations = append(allocations, allocation{addr: addr, buf: buf})
	return addr
}

// take returns the size bytes the host wrote at addr (an address malloc
// returned) and forgets the allocation.
func take(addr, size uint32) []byte {
	for i := len(allocations) - 1; i >= 0; i-- {
		if allocations[i].addr != addr {
			continue
		}
		buf := allocations[i].buf
		last := len(allocations) - 1
		allocations[i] = allocations[last]
		allocations[last] = allocation{}
		allocations = allocations[:last]
		if int(size) > len(buf) {
			size = uint32(len(buf))
		}
		return buf[:size]
	}
	return nil
}

// Malloc is the allocator the host calls to place data in the module's
// memory (exported as malloc and proxy_on_memory_allocate).
//
//go:wasmexport malloc
func Malloc(size uint32) uint32 { return allocate(size) }

// OnMemoryAllocate is the ABI's named allocator.
//
//go:wasmexport proxy_on_memory_allocate
func OnMemoryAllocate(size uint32) uint32 { return allocate(size) }

// ptr returns the address of a byte slice's data (nil for empty).
func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// sptr returns the address of a string's data (nil for empty).
func sptr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}
