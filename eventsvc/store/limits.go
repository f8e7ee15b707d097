package store

import (
	"errors"
	"fmt"
)

// Limits bound what one request may carry. Requests beyond them are refused
// with an *InvalidError naming the limit.
type Limits struct {
	// MaxPages is the most pages one append may carry. Default 1000, at most
	// HardMaxPages.
	MaxPages int
	// MaxEventBytes is the largest encoded event (and snapshot state) in
	// bytes. Default 1 MiB.
	MaxEventBytes int
	// LoadPageBytes bounds one page of a loaded history
	// (LoadQuery.MaxBytes of EventStore.Load): a longer history comes in
	// several pages (LoadResponse.more_from). Default 1 MiB, at most
	// HardMaxLoadPageBytes, so that a page (plus a snapshot, an event and
	// an idempotent repeat's answer) stays well below gRPC's usual 4 MiB
	// message limit.
	LoadPageBytes int
	// MaxHistoryBytes bounds an aggregate's events after its latest
	// snapshot, in bytes as the backend stores them: an append without a
	// snapshot that would take them beyond it is refused with a
	// *HistoryError and stores nothing. Default 4 MiB, what a command
	// can carry to business logic behind gRPC's usual 4 MiB receive limit
	// (the filter refuses such appends first, a little earlier, keeping
	// room for the command); -1: no bound. Both backends keep the size
	// per aggregate; SQLite sums the events of an aggregate stored before
	// once, Redis bounds such an aggregate (no az:size key) from its next
	// snapshot on.
	MaxHistoryBytes int
}

// HardMaxPages is the most pages any append may carry, whatever the limits
// say (a Lua script's argument count is bounded).
const HardMaxPages = 4000

// HardMaxLoadPageBytes is the largest load page Limits may ask for.
const HardMaxLoadPageBytes = 2 << 20

// Limit defaults.
const (
	DefaultMaxPages        = 1000
	DefaultMaxEventBytes   = 1 << 20
	DefaultLoadPageBytes   = 1 << 20
	DefaultMaxHistoryBytes = 4 << 20
	// MaxDomainLen, MaxCorrelationLen and MaxIdempotencyKeyLen bound the
	// identifiers stored with events.
	MaxDomainLen         = 128
	MaxCorrelationLen    = 256
	MaxIdempotencyKeyLen = 256
)

// HistoryBound is MaxHistoryBytes with its default, 0 for no bound.
func (l Limits) HistoryBound() int {
	if l = l.WithDefaults(); l.MaxHistoryBytes < 0 {
		return 0
	}
	return l.MaxHistoryBytes
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxPages == 0 {
		l.MaxPages = DefaultMaxPages
	}
	if l.MaxEventBytes == 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.LoadPageBytes == 0 {
		l.LoadPageBytes = DefaultLoadPageBytes
	}
	if l.MaxHistoryBytes == 0 {
		l.MaxHistoryBytes = DefaultMaxHistoryBytes
	}
	return l
}

// Validate reports every problem with the limits.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxPages < 0 || l.MaxPages > HardMaxPages {
		errs = append(errs, fmt.Errorf("max pages %d: must be between 1 and %d", l.MaxPages, HardMaxPages))
	}
	if l.MaxEventBytes < 0 {
		errs = append(errs, fmt.Errorf("max event bytes %d: must be positive", l.MaxEventBytes))
	}
	if l.LoadPageBytes < 0 || l.LoadPageBytes > HardMaxLoadPageBytes {
		errs = append(errs, fmt.Errorf("load page bytes %d: must be between 1 and %d", l.LoadPageBytes, HardMaxLoadPageBytes))
	}
	if l.MaxHistoryBytes < -1 {
		errs = append(errs, fmt.Errorf("max history bytes %d: must be positive, or -1 for no bound", l.MaxHistoryBytes))
	}
	return errors.Join(errs...)
}
