//go:build wasip1

package main

import "unsafe"

// unsafePtr forges a guest address (to test the host's bounds checks).
func unsafePtr(addr uintptr) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(nil), addr)
}
