package wasmhost

import (
	"encoding/binary"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// Properties: the documented subset of Envoy's attributes (see doc.go).
// A path is NUL-separated tokens, e.g. "request\x00headers\x00x-id".
// Values are serialised as Envoy does: strings raw, integers as 8-byte
// little-endian, doubles as 8-byte IEEE, booleans as one byte, maps in the
// pairs encoding.

// proxy_get_property(path_ptr, path_size, return_value_ptr, return_value_size)
func abiGetProperty(v *vm, s []uint64) proxywasm.Status {
	path, ok := v.readString(uint32(s[0]), uint32(s[1]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	val, st := v.property(splitPath(path))
	if st != proxywasm.StatusOK {
		return st
	}
	return v.copyOut(val, uint32(s[2]), uint32(s[3]))
}

// proxy_set_property(path_ptr, path_size, value_ptr, value_size): stored on
// the stream (Envoy's filter state "wasm.<path>"), readable back with
// proxy_get_property; NOT_FOUND on the root context, which has no stream.
func abiSetProperty(v *vm, s []uint64) proxywasm.Status {
	pb, ok1 := v.read(uint32(s[0]), uint32(s[1]))
	val, ok2 := v.readBytes(uint32(s[2]), uint32(s[3]))
	if !ok1 || !ok2 {
		return proxywasm.StatusInvalidMemoryAccess
	}
	path := guestString(pb)
	st := v.contextStream()
	if st == nil {
		return proxywasm.StatusNotFound
	}
	if st.props == nil {
		st.props = map[string][]byte{}
	}
	st.props[path] = val
	return proxywasm.StatusOK
}

func splitPath(p string) []string {
	parts := strings.Split(p, "\x00")
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

func u64le(n uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, n)
	return b
}

// property resolves a tokenised path.
func (v *vm) property(path []string) ([]byte, proxywasm.Status) {
	if len(path) == 0 {
		return nil, proxywasm.StatusNotFound
	}
	g := v.gen
	cfg := &g.h.cfg
	st := v.contextStream()
	switch path[0] {
	case "plugin_name":
		return leaf(path, []byte(v.pluginOf(v.currentRoot()).Name))
	case "plugin_root_id":
		return leaf(path, []byte(v.pluginOf(v.currentRoot()).RootID))
	case "plugin_vm_id":
		return leaf(path, []byte(g.plugin.VMID))
	case "node":
		node := map[string]any{"id": cfg.NodeID, "cluster": cfg.NodeCluster}
		if cfg.NodeMetadata != nil {
			node["metadata"] = cfg.NodeMetadata
		}
		return lookupValue(node, path[1:])
	case "request":
		if st == nil {
			return nil, proxywasm.StatusNotFound
		}
		return st.requestProperty(path[1:])
	case "response":
		if st == nil {
			return nil, proxywasm.StatusNotFound
		}
		return st.responseProperty(path[1:])
	case "source", "destination":
		if st == nil {
			return nil, proxywasm.StatusNotFound
		}
		addr := st.req.RemoteAddr
		if path[0] == "destination" {
			addr = ""
			if a, ok := st.req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				addr = a.String()
			}
		}
		if addr == "" {
			return nil, proxywasm.StatusNotFound
		}
		if len(path) != 2 {
			return nil, proxywasm.StatusNotFound
		}
		switch path[1] {
		case "address":
			return []byte(addr), proxywasm.StatusOK
		case "port":
			_, port, err := net.SplitHostPort(addr)
			n, err2 := strconv.ParseInt(port, 10, 64)
			if err != nil || err2 != nil {
				return nil, proxywasm.StatusNotFound
			}
			return u64le(uint64(n)), proxywasm.StatusOK
		}
		return nil, proxywasm.StatusNotFound
	}
	// Unknown top-level token: a value set with proxy_set_property.
	if st != nil {
		if val, ok := st.props[strings.Join(path, "\x00")]; ok {
			return val, proxywasm.StatusOK
		}
	}
	return nil, proxywasm.StatusNotFound
}

func leaf(path []string, val []byte) ([]byte, proxywasm.Status) {
	if len(path) != 1 {
		return nil, proxywasm.StatusNotFound
	}
	return val, proxywasm.StatusOK
}

// requestProperty serves request.*; like Envoy, header-derived attributes
// exist only while the request headers are available to the plugin.
func (s *stream) requestProperty(path []string) ([]byte, proxywasm.Status) {
	if len(path) == 0 {
		return nil, proxywasm.StatusNotFound
	}
	if path[0] == "protocol" {
		return leaf(path, []byte(s.req.Proto))
	}
	h := s.reqHeaders
	if h == nil {
		return nil, proxywasm.StatusNotFound
	}
	get := func(k string) ([]byte, proxywasm.Status) {
		val, ok := h.get(k)
		if !ok {
			return nil, proxywasm.StatusNotFound
		}
		return leaf(path, []byte(val))
	}
	switch path[0] {
	case "path":
		return get(":path")
	case "url_path":
		p, ok := h.get(":path")
		if !ok {
			return nil, proxywasm.StatusNotFound
		}
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		return leaf(path, []byte(p))
	case "host":
		return get(":authority")
	case "scheme":
		return get(":scheme")
	case "method":
		return get(":method")
	case "id":
		return get("x-request-id")
	case "headers":
		return headersProperty(h, path[1:])
	}
	return nil, proxywasm.StatusNotFound
}

// responseProperty serves response.code and response.headers.* while the
// response headers are available.
func (s *stream) responseProperty(path []string) ([]byte, proxywasm.Status) {
	h := s.respHeaders
	if len(path) == 0 || h == nil {
		return nil, proxywasm.StatusNotFound
	}
	switch path[0] {
	case "code":
		c, ok := h.get(":status")
		n, err := strconv.ParseInt(c, 10, 64)
		if !ok || err != nil || len(path) != 1 {
			return nil, proxywasm.StatusNotFound
		}
		return u64le(uint64(n)), proxywasm.StatusOK
	case "headers":
		return headersProperty(h, path[1:])
	}
	return nil, proxywasm.StatusNotFound
}

func headersProperty(h *headerMap, path []string) ([]byte, proxywasm.Status) {
	switch len(path) {
	case 0:
		var pairs [][2]string
		for _, kv := range h.kv {
			if !strings.HasPrefix(kv[0], ":") {
				pairs = append(pairs, kv)
			}
		}
		return encodePairs(pairs), proxywasm.StatusOK
	case 1:
		// Envoy joins repeated headers with ",".
		var vals []string
		k := strings.ToLower(path[0])
		for _, kv := range h.kv {
			if kv[0] == k {
				vals = append(vals, kv[1])
			}
		}
		if len(vals) == 0 {
			return nil, proxywasm.StatusNotFound
		}
		return []byte(strings.Join(vals, ",")), proxywasm.StatusOK
	}
	return nil, proxywasm.StatusNotFound
}

// lookupValue walks a JSON-like value (node metadata) and serialises the
// result as Envoy serialises protobuf Struct values.
func lookupValue(val any, path []string) ([]byte, proxywasm.Status) {
	for _, p := range path {
		switch m := val.(type) {
		case map[string]any:
			next, ok := m[p]
			if !ok {
				return nil, proxywasm.StatusNotFound
			}
			val = next
		case map[string]string:
			next, ok := m[p]
			if !ok {
				return nil, proxywasm.StatusNotFound
			}
			val = next
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(m) {
				return nil, proxywasm.StatusNotFound
			}
			val = m[i]
		default:
			return nil, proxywasm.StatusNotFound
		}
	}
	b, ok := serializeValue(val)
	if !ok {
		return nil, proxywasm.StatusSerializationFailure
	}
	return b, proxywasm.StatusOK
}

func serializeValue(val any) ([]byte, bool) {
	switch x := val.(type) {
	case nil:
		return nil, true
	case string:
		return []byte(x), true
	case []byte:
		return x, true
	case bool:
		if x {
			return []byte{1}, true
		}
		return []byte{0}, true
	case float64:
		return u64le(math.Float64bits(x)), true
	case float32:
		return u64le(math.Float64bits(float64(x))), true
	case int:
		return u64le(math.Float64bits(float64(x))), true
	case int64:
		return u64le(math.Float64bits(float64(x))), true
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([][2]string, 0, len(x))
		for _, k := range keys {
			pairs = append(pairs, [2]string{k, x[k]})
		}
		return encodePairs(pairs), true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([][2]string, 0, len(x))
		for _, k := range keys {
			b, ok := serializeValue(x[k])
			if !ok {
				return nil, false
			}
			pairs = append(pairs, [2]string{k, string(b)})
		}
		return encodePairs(pairs), true
	case []any:
		pairs := make([][2]string, 0, len(x))
		for _, e := range x {
			b, ok := serializeValue(e)
			if !ok {
				return nil, false
			}
			pairs = append(pairs, [2]string{string(b), ""})
		}
		return encodePairs(pairs), true
	}
	return nil, false
}
