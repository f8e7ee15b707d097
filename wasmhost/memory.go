package wasmhost

import (
	"encoding/binary"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// Guest memory access. Every pointer comes from the module and is checked;
// an out-of-range access yields INVALID_MEMORY_ACCESS (or EFAULT in WASI),
// never a host panic. Slices returned by read alias guest memory and are
// only valid until the next call into the module.

func (v *vm) read(ptr, n uint32) ([]byte, bool) {
	return v.mem.Read(ptr, n)
}

// readString copies n bytes at ptr out of guest memory.
func (v *vm) readString(ptr, n uint32) (string, bool) {
	b, ok := v.mem.Read(ptr, n)
	if !ok {
		return "", false
	}
	return string(b), true
}

// readBytes copies n bytes at ptr out of guest memory.
func (v *vm) readBytes(ptr, n uint32) ([]byte, bool) {
	b, ok := v.mem.Read(ptr, n)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

func (v *vm) write(ptr uint32, b []byte) bool { return v.mem.Write(ptr, b) }

func (v *vm) writeU16(ptr uint32, x uint16) bool { return v.mem.WriteUint16Le(ptr, x) }

func (v *vm) writeU32(ptr, x uint32) bool { return v.mem.WriteUint32Le(ptr, x) }

func (v *vm) writeU64(ptr uint32, x uint64) bool { return v.mem.WriteUint64Le(ptr, x) }

// alloc asks the module for n bytes (malloc, else proxy_on_memory_allocate)
// under the allocation allow-list. It returns false when the module returns
// a null pointer or traps.
func (v *vm) alloc(n uint32) (uint32, bool) {
	saved := v.phase
	v.phase = phaseAllocate
	v.allocStack[0] = uint64(n)
	err := v.fnAlloc.CallWithStack(v.ctx, v.allocStack[:])
	v.phase = saved
	if err != nil {
		// A trap inside the allocator poisons the VM like any other trap.
		panic(err)
	}
	ptr := uint32(v.allocStack[0])
	if ptr == 0 {
		return 0, false
	}
	if _, ok := v.mem.Read(ptr, n); !ok {
		return 0, false
	}
	return ptr, true
}

// copyOut allocates guest memory for data, copies it there, and stores the
// pointer and size at ptrPtr and sizePtr (cpp-host's copyToPointerSize).
// Empty data stores 0 and 0 without allocating.
func (v *vm) copyOut(data []byte, ptrPtr, sizePtr uint32) proxywasm.Status {
	var ptr uint32
	if len(data) > 0 {
		p, ok := v.alloc(uint32(len(data)))
		if !ok || !v.write(p, data) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		ptr = p
	}
	return v.storePtrSize(ptr, len(data), ptrPtr, sizePtr)
}

// copyOutString is copyOut for a string, written without a []byte copy
// (a conversion would escape through api.Memory.Write).
func (v *vm) copyOutString(data string, ptrPtr, sizePtr uint32) proxywasm.Status {
	var ptr uint32
	if len(data) > 0 {
		p, ok := v.alloc(uint32(len(data)))
		if !ok || !v.mem.WriteString(p, data) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		ptr = p
	}
	return v.storePtrSize(ptr, len(data), ptrPtr, sizePtr)
}

func (v *vm) storePtrSize(ptr uint32, n int, ptrPtr, sizePtr uint32) proxywasm.Status {
	if !v.writeU32(ptrPtr, ptr) || !v.writeU32(sizePtr, uint32(n)) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// Pairs encoding (proxy-wasm "map" serialisation): u32 count, then per pair
// u32 key length and u32 value length, then each key and value followed by
// a NUL byte. Little-endian.

const (
	maxPairsBytes = 1024 * 1024 // PROXY_WASM_HOST_PAIRS_MAX_BYTES
	maxPairsCount = 1024        // PROXY_WASM_HOST_PAIRS_MAX_COUNT
)

func encodePairs(pairs [][2]string) []byte {
	size := 4
	for _, p := range pairs {
		size += 8 + len(p[0]) + 1 + len(p[1]) + 1
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, uint32(len(pairs)))
	off := 4
	for _, p := range pairs {
		binary.LittleEndian.PutUint32(b[off:], uint32(len(p[0])))
		binary.LittleEndian.PutUint32(b[off+4:], uint32(len(p[1])))
		off += 8
	}
	for _, p := range pairs {
		off += copy(b[off:], p[0]) + 1
		off += copy(b[off:], p[1]) + 1
	}
	return b
}

// decodePairs parses the pairs encoding. Like cpp-host's PairsUtil::toPairs
// it returns no pairs for malformed or oversized input.
func decodePairs(b []byte) [][2]string {
	if len(b) < 4 || len(b) > maxPairsBytes {
		return nil
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxPairsCount || uint64(len(b)) < 4+uint64(n)*8 {
		return nil
	}
	sizes := b[4 : 4+n*8]
	data := b[4+n*8:]
	out := make([][2]string, 0, n)
	for i := uint32(0); i < n; i++ {
		kl := binary.LittleEndian.Uint32(sizes[i*8:])
		vl := binary.LittleEndian.Uint32(sizes[i*8+4:])
		if uint64(len(data)) < uint64(kl)+1 || data[kl] != 0 {
			return nil
		}
		k := guestString(data[:kl]) // names recur: interned
		data = data[kl+1:]
		if uint64(len(data)) < uint64(vl)+1 || data[vl] != 0 {
			return nil
		}
		val := string(data[:vl])
		data = data[vl+1:]
		out = append(out, [2]string{k, val})
	}
	return out
}
