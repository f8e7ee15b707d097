package wasmhost

import "github.com/angzarr-mesh/angzarr/internal/proxywasm"

// Header map host functions, with Envoy's rules: keys are lower-cased; a map
// not available in the current context is BAD_ARGUMENT for every call except
// get_header_map_pairs (empty pairs, OK); get returns the first value or
// NOT_FOUND; replace sets a single value (adding if absent); set_pairs
// replaces the whole map; get_header_map_size is the map's byte size
// (Envoy's HeaderMap::byteSize). The gRPC metadata and HTTP call response
// maps are read-only.

func mapTypeArg(s []uint64) (proxywasm.MapType, bool) {
	t := proxywasm.MapType(s[0])
	return t, t <= proxywasm.MapTypeMax
}

// proxy_get_header_map_value(map_type, key_ptr, key_size, return_value_ptr, return_value_size)
func abiGetHeaderMapValue(v *vm, s []uint64) proxywasm.Status {
	t, ok := mapTypeArg(s)
	if !ok {
		return proxywasm.StatusBadArgument
	}
	kb, ok := v.read(uint32(s[1]), uint32(s[2]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	key := guestKey(kb)
	m := v.headerMapFor(t, false)
	if m == nil {
		return proxywasm.StatusBadArgument
	}
	val, found := m.get(key)
	if !found {
		return proxywasm.StatusNotFound
	}
	return v.copyOutString(val, uint32(s[3]), uint32(s[4]))
}

// proxy_get_header_map_pairs(map_type, return_map_ptr, return_map_size)
func abiGetHeaderMapPairs(v *vm, s []uint64) proxywasm.Status {
	t, ok := mapTypeArg(s)
	if !ok {
		return proxywasm.StatusBadArgument
	}
	m := v.headerMapFor(t, false)
	var data []byte
	if m != nil && len(m.kv) > 0 {
		data = encodePairs(m.kv)
	}
	return v.copyOut(data, uint32(s[1]), uint32(s[2]))
}

// proxy_get_header_map_size(map_type, return_size_ptr)
func abiGetHeaderMapSize(v *vm, s []uint64) proxywasm.Status {
	t, ok := mapTypeArg(s)
	if !ok {
		return proxywasm.StatusBadArgument
	}
	m := v.headerMapFor(t, true)
	if m == nil {
		return proxywasm.StatusBadArgument
	}
	if !v.writeU32(uint32(s[1]), uint32(m.byteSize())) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// mutateHeader reads key (and value) and applies op to a mutable map.
func mutateHeader(v *vm, s []uint64, withValue bool, op func(m *headerMap, k, val string)) proxywasm.Status {
	t, ok := mapTypeArg(s)
	if !ok {
		return proxywasm.StatusBadArgument
	}
	kb, ok := v.read(uint32(s[1]), uint32(s[2]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	key := guestKey(kb)
	var val string
	if withValue {
		if val, ok = v.readString(uint32(s[3]), uint32(s[4])); !ok {
			return proxywasm.StatusInvalidMemoryAccess
		}
	}
	m := v.headerMapFor(t, true)
	if m == nil {
		return proxywasm.StatusBadArgument
	}
	op(m, key, val)
	return proxywasm.StatusOK
}

// proxy_add_header_map_value(map_type, key_ptr, key_size, value_ptr, value_size)
func abiAddHeaderMapValue(v *vm, s []uint64) proxywasm.Status {
	return mutateHeader(v, s, true, (*headerMap).add)
}

// proxy_replace_header_map_value(map_type, key_ptr, key_size, value_ptr, value_size)
func abiReplaceHeaderMapValue(v *vm, s []uint64) proxywasm.Status {
	return mutateHeader(v, s, true, (*headerMap).set)
}

// proxy_remove_header_map_value(map_type, key_ptr, key_size)
func abiRemoveHeaderMapValue(v *vm, s []uint64) proxywasm.Status {
	return mutateHeader(v, s, false, func(m *headerMap, k, _ string) { m.remove(k) })
}

// proxy_set_header_map_pairs(map_type, map_ptr, map_size)
func abiSetHeaderMapPairs(v *vm, s []uint64) proxywasm.Status {
	t, ok := mapTypeArg(s)
	if !ok {
		return proxywasm.StatusBadArgument
	}
	data, ok := v.read(uint32(s[1]), uint32(s[2]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	pairs := decodePairs(data)
	m := v.headerMapFor(t, true)
	if m == nil {
		return proxywasm.StatusBadArgument
	}
	m.setPairs(pairs)
	return proxywasm.StatusOK
}
