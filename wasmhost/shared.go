package wasmhost

import (
	"sync"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// sharedStore is the host-wide shared data and shared queues, scoped by
// vm_id like proxy-wasm-cpp-host's global SharedData / SharedQueue: every
// VM of every plugin generation with the same vm_id sees the same values.
type sharedStore struct {
	mu      sync.Mutex
	data    map[string]map[string]sharedValue
	cas     uint32
	queues  map[uint32]*sharedQueue
	byName  map[[2]string]uint32
	nextQID uint32
}

type sharedValue struct {
	value []byte
	cas   uint32
}

// sharedQueue delivers proxy_on_queue_ready to the root context of the VM
// that registered it last.
type sharedQueue struct {
	items [][]byte
	owner *vm
}

func newSharedStore() *sharedStore {
	return &sharedStore{
		data:    map[string]map[string]sharedValue{},
		queues:  map[uint32]*sharedQueue{},
		byName:  map[[2]string]uint32{},
		nextQID: 1,
	}
}

func (s *sharedStore) nextCAS() uint32 {
	s.cas++
	if s.cas == 0 {
		s.cas++
	}
	return s.cas
}

func (s *sharedStore) get(vmID, key string) (sharedValue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[vmID][key]
	return v, ok
}

// set stores value; a non-zero cas must match the current one.
func (s *sharedStore) set(vmID, key string, value []byte, cas uint32) proxywasm.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.data[vmID]
	if m == nil {
		m = map[string]sharedValue{}
		s.data[vmID] = m
	}
	if cur, ok := m[key]; ok && cas != 0 && cas != cur.cas {
		return proxywasm.StatusCASMismatch
	}
	m[key] = sharedValue{value: value, cas: s.nextCAS()}
	return proxywasm.StatusOK
}

func (s *sharedStore) register(vmID, name string, owner *vm) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{vmID, name}
	id, ok := s.byName[k]
	if !ok {
		id = s.nextQID
		s.nextQID++
		s.byName[k] = id
		s.queues[id] = &sharedQueue{}
	}
	s.queues[id].owner = owner
	return id
}

func (s *sharedStore) resolve(vmID, name string) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byName[[2]string{vmID, name}]
	return id, ok
}

func (s *sharedStore) dequeue(id uint32) ([]byte, proxywasm.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[id]
	if !ok {
		return nil, proxywasm.StatusNotFound
	}
	if len(q.items) == 0 {
		return nil, proxywasm.StatusEmpty
	}
	item := q.items[0]
	q.items = q.items[1:]
	return item, proxywasm.StatusOK
}

// enqueue appends and returns the VM to notify.
func (s *sharedStore) enqueue(id uint32, item []byte) (*vm, proxywasm.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[id]
	if !ok {
		return nil, proxywasm.StatusNotFound
	}
	q.items = append(q.items, item)
	return q.owner, proxywasm.StatusOK
}
