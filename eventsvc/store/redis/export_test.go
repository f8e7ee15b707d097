package redis

import "github.com/angzarr-mesh/angzarr/eventsvc/store"

// PartitionOf is the partition of agg, for tests that must know where an
// append goes before making it.
func (s *Store) PartitionOf(agg store.Aggregate) uint32 { return s.partition(agg) }
