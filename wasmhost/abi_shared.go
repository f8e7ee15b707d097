package wasmhost

import "github.com/angzarr-mesh/angzarr/internal/proxywasm"

// Shared data and shared queue host functions (scoped by the plugin's vm_id).

// proxy_get_shared_data(key_ptr, key_size, return_value_ptr, return_value_size, return_cas_ptr)
func abiGetSharedData(v *vm, s []uint64) proxywasm.Status {
	key, ok := v.readString(uint32(s[0]), uint32(s[1]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	val, found := v.gen.h.shared.get(v.gen.plugin.VMID, key)
	if !found {
		return proxywasm.StatusNotFound
	}
	if st := v.copyOut(val.value, uint32(s[2]), uint32(s[3])); st != proxywasm.StatusOK {
		return st
	}
	if !v.writeU32(uint32(s[4]), val.cas) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// proxy_set_shared_data(key_ptr, key_size, value_ptr, value_size, cas)
func abiSetSharedData(v *vm, s []uint64) proxywasm.Status {
	key, ok1 := v.readString(uint32(s[0]), uint32(s[1]))
	val, ok2 := v.readBytes(uint32(s[2]), uint32(s[3]))
	if !ok1 || !ok2 {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return v.gen.h.shared.set(v.gen.plugin.VMID, key, val, uint32(s[4]))
}

// proxy_register_shared_queue(name_ptr, name_size, return_queue_id_ptr)
func abiRegisterSharedQueue(v *vm, s []uint64) proxywasm.Status {
	name, ok := v.readString(uint32(s[0]), uint32(s[1]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	id := v.gen.h.shared.register(v.gen.plugin.VMID, name, v)
	if !v.writeU32(uint32(s[2]), id) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// proxy_resolve_shared_queue(vm_id_ptr, vm_id_size, name_ptr, name_size, return_queue_id_ptr)
func abiResolveSharedQueue(v *vm, s []uint64) proxywasm.Status {
	vmID, ok1 := v.readString(uint32(s[0]), uint32(s[1]))
	name, ok2 := v.readString(uint32(s[2]), uint32(s[3]))
	if !ok1 || !ok2 {
		return proxywasm.StatusInvalidMemoryAccess
	}
	if vmID == "" {
		vmID = v.gen.plugin.VMID
	}
	id, found := v.gen.h.shared.resolve(vmID, name)
	if !found {
		return proxywasm.StatusNotFound
	}
	if !v.writeU32(uint32(s[4]), id) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// proxy_dequeue_shared_queue(queue_id, return_payload_ptr, return_payload_size)
func abiDequeueSharedQueue(v *vm, s []uint64) proxywasm.Status {
	item, st := v.gen.h.shared.dequeue(uint32(s[0]))
	if st != proxywasm.StatusOK {
		return st
	}
	return v.copyOut(item, uint32(s[1]), uint32(s[2]))
}

// proxy_enqueue_shared_queue(queue_id, payload_ptr, payload_size): the
// owning VM's root context gets proxy_on_queue_ready asynchronously (posted
// onto that VM, never called re-entrantly).
func abiEnqueueSharedQueue(v *vm, s []uint64) proxywasm.Status {
	item, ok := v.readBytes(uint32(s[1]), uint32(s[2]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	id := uint32(s[0])
	owner, st := v.gen.h.shared.enqueue(id, item)
	if st != proxywasm.StatusOK {
		return st
	}
	if owner != nil {
		v.gen.h.goBackground(func() {
			owner.mu.Lock()
			defer owner.mu.Unlock()
			if owner.closed || owner.failed {
				return
			}
			owner.callExport("proxy_on_queue_ready", owner.rootID, uint64(owner.rootID), uint64(id))
		})
	}
	return proxywasm.StatusOK
}
