package wasmhost_test

// A minimal WebAssembly binary encoder, enough to hand-craft modules for the
// loading rules (exports, imports, start functions, WASI results) that a Go
// module cannot express precisely.

const (
	tI32 = 0x7f
	tI64 = 0x7e
)

type wFunc struct {
	params, results []byte
	body            []byte // instructions, without locals and end
	export          string
}

type wImport struct {
	module, name    string
	params, results []byte
}

type wModule struct {
	imports []wImport
	funcs   []wFunc
	data    map[uint32]string
}

func uleb(x uint64) []byte {
	var b []byte
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if x != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(x int64) []byte {
	var b []byte
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func vec(items [][]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func name(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func section(id byte, content []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(content)))...), content...)
}

// Instructions.
func i32c(n int32) []byte { return append([]byte{0x41}, sleb(int64(n))...) }
func call(idx int) []byte { return append([]byte{0x10}, uleb(uint64(idx))...) }

var (
	drop   = []byte{0x1a}
	store8 = []byte{0x3a, 0x00, 0x00}
	cat    = func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
)

func (m *wModule) encode() []byte {
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	var types [][]byte
	typeOf := func(params, results []byte) int {
		t := append(append(append([]byte{0x60}, uleb(uint64(len(params)))...), params...), append(uleb(uint64(len(results))), results...)...)
		for i, x := range types {
			if string(x) == string(t) {
				return i
			}
		}
		types = append(types, t)
		return len(types) - 1
	}
	var imports, funcs, exports, codes [][]byte
	for _, im := range m.imports {
		imports = append(imports, cat(name(im.module), name(im.name), []byte{0x00}, uleb(uint64(typeOf(im.params, im.results)))))
	}
	for i, f := range m.funcs {
		funcs = append(funcs, uleb(uint64(typeOf(f.params, f.results))))
		if f.export != "" {
			exports = append(exports, cat(name(f.export), []byte{0x00}, uleb(uint64(len(m.imports)+i))))
		}
		body := cat([]byte{0x00}, f.body, []byte{0x0b})
		codes = append(codes, append(uleb(uint64(len(body))), body...))
	}
	exports = append(exports, cat(name("memory"), []byte{0x02, 0x00}))
	out = append(out, section(1, vec(types))...)
	out = append(out, section(2, vec(imports))...)
	out = append(out, section(3, vec(funcs))...)
	out = append(out, section(5, vec([][]byte{{0x00, 0x01}}))...)
	out = append(out, section(7, vec(exports))...)
	out = append(out, section(10, vec(codes))...)
	var data [][]byte
	for off, s := range m.data {
		data = append(data, cat([]byte{0x00}, i32c(int32(off)), []byte{0x0b}, name(s)))
	}
	if len(data) > 0 {
		out = append(out, section(11, vec(data))...)
	}
	return out
}

// proxyModule returns a module with the ABI export, an allocator and the
// given imports and functions.
func proxyModule(abi string, imports []wImport, funcs ...wFunc) *wModule {
	m := &wModule{imports: imports, data: map[uint32]string{}}
	if abi != "" {
		m.funcs = append(m.funcs, wFunc{export: abi})
	}
	m.funcs = append(m.funcs, wFunc{params: []byte{tI32}, results: []byte{tI32}, body: i32c(4096), export: "proxy_on_memory_allocate"})
	m.funcs = append(m.funcs, funcs...)
	return m
}

var (
	impLog  = wImport{"env", "proxy_log", []byte{tI32, tI32, tI32}, []byte{tI32}}
	impPoll = wImport{"wasi_snapshot_preview1", "poll_oneoff", []byte{tI32, tI32, tI32, tI32}, []byte{tI32}}
)
