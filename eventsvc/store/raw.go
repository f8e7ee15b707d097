package store

import "context"

type rawKey struct{}

// WithRaw marks a read as wanting the events as stored: decorators that
// transform events on the way out (the domain's upcasters, package upcast)
// leave them alone. EventQuery sets it for Query.raw.
func WithRaw(ctx context.Context) context.Context {
	return context.WithValue(ctx, rawKey{}, true)
}

// IsRaw reports whether the read was marked WithRaw.
func IsRaw(ctx context.Context) bool {
	raw, _ := ctx.Value(rawKey{}).(bool)
	return raw
}
