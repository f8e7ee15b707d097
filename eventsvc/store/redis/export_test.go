package redis

import "github.com/angzarr-mesh/angzarr/eventsvc/store"

// PartitionOf is the partition of agg, for tests that must know where an
// append goes before making it.
func (s *Store) PartitionOf(agg store.Aggregate) uint32 { return s.partition(agg) }

// SizeKeyOf is the key of agg's page size (az:size), for tests of
// aggregates stored before it was kept.
func (s *Store) SizeKeyOf(agg store.Aggregate) string { return s.keys(agg).size }
