//go:build wasip1 && withmalloc

package main

// With the withmalloc tag the module also exports malloc, which the host
// must prefer over proxy_on_memory_allocate.

//go:wasmexport malloc
func malloc(size uint32) uint32 {
	mallocCalls++
	return allocate(size)
}
