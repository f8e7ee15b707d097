package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// Every parameter a client sends is checked here before it reaches a gRPC
// request: names follow the event service's own rules, roots are UUIDs,
// numbers are bounded.

func domainParam(r *http.Request) (string, error) {
	d := r.PathValue("domain")
	if err := store.ValidateDomain("domain", d); err != nil {
		return "", err
	}
	return d, nil
}

func rootParam(r *http.Request) (uuid.UUID, error) {
	u, err := uuid.Parse(r.PathValue("root"))
	if err != nil {
		return uuid.Nil, fmt.Errorf("root %q: not a UUID", r.PathValue("root"))
	}
	return u, nil
}

// correlationParam is the id query parameter: a correlation id.
func correlationParam(r *http.Request) (string, error) {
	id := r.URL.Query().Get("id")
	if id == "" {
		return "", errors.New("id: a correlation id is required")
	}
	if err := store.ValidateText("id", id, store.MaxCorrelationLen); err != nil {
		return "", err
	}
	return id, nil
}

// subscriberName checks a subscriber's name (named like a domain).
func subscriberName(field, s string) error {
	return store.ValidateDomain(field, s)
}

// deadLetterID checks a dead letter's id: the store's ids are short runs of
// letters, digits, '-' and '.'.
func deadLetterID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("dead letter id %q: 1 to 64 characters", id)
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '.' || c == '_' || c == ':') {
			return fmt.Errorf("dead letter id %q: only letters, digits, '-', '.', '_' and ':'", id)
		}
	}
	return nil
}

// limitParam is the limit query parameter: DefaultPageSize when absent, at
// most MaxPageSize.
func limitParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, fmt.Errorf("limit %q: a number from 1 to %d", s, MaxPageSize)
	}
	return n, nil
}

// uintParam is an optional unsigned query parameter.
func uintParam(r *http.Request, name string, bits int) (uint64, bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, false, fmt.Errorf("%s %q: not an unsigned number", name, s)
	}
	return n, true, nil
}

// timeParam is an optional RFC 3339 time query parameter.
func timeParam(r *http.Request, name string) (time.Time, bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s %q: not an RFC 3339 time", name, s)
	}
	return t, true, nil
}

// logCursor is where a page of a domain's log starts: the last offset read
// per partition, as "PARTITION:OFFSET,..." in the cursor parameter.
func logCursor(r *http.Request) (map[uint32]uint64, error) {
	s := r.URL.Query().Get("cursor")
	out := map[uint32]uint64{}
	if s == "" {
		return out, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > 1024 {
		return nil, errors.New("cursor: too many partitions")
	}
	for _, p := range parts {
		ps, os, ok := strings.Cut(p, ":")
		part, err1 := strconv.ParseUint(ps, 10, 32)
		off, err2 := strconv.ParseUint(os, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("cursor %q: want PARTITION:OFFSET pairs separated by commas", s)
		}
		if _, dup := out[uint32(part)]; dup {
			return nil, fmt.Errorf("cursor %q: partition %d twice", s, part)
		}
		out[uint32(part)] = off
	}
	return out, nil
}

// formatCursor renders a cursor for the next page.
func formatCursor(c map[uint32]uint64) string {
	keys := make([]uint32, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slicesSort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", k, c[k])
	}
	return b.String()
}

func formatUint(n uint64) string { return strconv.FormatUint(n, 10) }
