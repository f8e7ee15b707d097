package store

import (
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ValidateDomain checks a domain name: 1 to MaxDomainLen characters from
// [A-Za-z0-9._-], starting with a letter or digit. Domains are used in
// storage keys, so nothing else is allowed.
func ValidateDomain(field, d string) error {
	if d == "" {
		return Invalid(field, "required")
	}
	if len(d) > MaxDomainLen {
		return Invalid(field, "longer than %d bytes", MaxDomainLen)
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return Invalid(field, "%q: only letters, digits, '.', '_' and '-', starting with a letter or digit", d)
		}
	}
	return nil
}

// ValidateText checks a free-text identifier (correlation id, idempotency
// key): valid UTF-8 of at most max bytes.
func ValidateText(field, s string, max int) error {
	if len(s) > max {
		return Invalid(field, "longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return Invalid(field, "not valid UTF-8")
	}
	return nil
}

// Validate checks the request against the semantics of Append and the
// limits: an *InvalidError names the first offending field.
func (r *AppendRequest) Validate(l Limits) error {
	l = l.WithDefaults()
	if err := ValidateDomain("cover.domain", r.Aggregate.Domain); err != nil {
		return err
	}
	if err := ValidateText("cover.correlation_id", r.CorrelationID, MaxCorrelationLen); err != nil {
		return err
	}
	if err := ValidateText("idempotency_key", r.IdempotencyKey, MaxIdempotencyKeyLen); err != nil {
		return err
	}
	if err := r.Trace.validate(); err != nil {
		return err
	}
	if len(r.Pages) == 0 && r.Snapshot == nil {
		return Invalid("pages", "empty: an append needs pages or a snapshot_state")
	}
	if len(r.Pages) > l.MaxPages {
		return Invalid("pages", "%d pages exceed the limit of %d per append", len(r.Pages), l.MaxPages)
	}
	for i, p := range r.Pages {
		if p == nil {
			return Invalid(pageField(i, ""), "missing")
		}
		if n, ok := p.GetSequence().(*pb.EventPage_Num); ok && uint64(n.Num) != uint64(r.Expected)+uint64(i) {
			return Invalid(pageField(i, ".num"), "%d does not continue expected_sequence %d (want %d)", n.Num, r.Expected, uint64(r.Expected)+uint64(i))
		}
		if f, ok := p.GetSequence().(*pb.EventPage_Force); ok && !f.Force {
			return Invalid(pageField(i, ".force"), "false: omit it or set num")
		}
		if p.GetEvent() == nil {
			return Invalid(pageField(i, ".event"), "required")
		}
		if s := proto.Size(p.GetEvent()); s > l.MaxEventBytes {
			return Invalid(pageField(i, ".event"), "%d bytes exceed the limit of %d", s, l.MaxEventBytes)
		}
	}
	if uint64(r.Expected)+uint64(len(r.Pages)) > 1<<32-1 {
		return Invalid("expected_sequence", "%d + %d pages overflows the sequence space", r.Expected, len(r.Pages))
	}
	if r.Snapshot != nil {
		if s := proto.Size(r.Snapshot); s > l.MaxEventBytes {
			return Invalid("snapshot_state", "%d bytes exceed the limit of %d", s, l.MaxEventBytes)
		}
	}
	return nil
}

func pageField(i int, suffix string) string {
	return "pages[" + strconv.Itoa(i) + "]" + suffix
}
