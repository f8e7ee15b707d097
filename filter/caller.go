package filter

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	"github.com/angzarr-mesh/angzarr/internal/xfcc"
)

// XFCCHeader is the header the proxy sets with the client certificate it
// verified (config.Config.CallerIdentity).
const XFCCHeader = "x-forwarded-client-cert"

// callerKeyPrefix starts an idempotency key scoped by its caller.
const callerKeyPrefix = "caller-"

// readCaller takes the caller's identity from the header the proxy set,
// when the configuration trusts it.
func (s *Stream) readCaller() {
	if !s.p.cfg.CallerIdentity {
		return
	}
	if h, ok := s.host().GetHeader(RequestHeaders, XFCCHeader); ok {
		s.caller = xfcc.Caller(h)
	}
}

// authorizeRecord allows a Record only to the configured recorders (when
// callers have identities).
func (s *Stream) authorizeRecord() *Status {
	cfg := s.p.cfg
	if !cfg.CallerIdentity {
		return nil
	}
	if s.caller == "" {
		return statusf(Unauthenticated, "Record needs a caller identity (a client certificate)")
	}
	if !slices.Contains(cfg.Recorders, s.caller) {
		return statusf(PermissionDenied, "%s may not Record (rule: recorders)", s.caller)
	}
	return nil
}

// scopeKey makes an idempotency key its caller's: with caller identities,
// a key becomes a hash of the caller and the key, so another client using
// the same key neither gets the first one's answer nor has its own command
// dropped. Saga keys of the saga issuers (the dispatcher, cascading
// proxies) stay shared among them, so a saga command takes effect once
// whichever of them delivers it; anyone else's saga key is scoped to them.
func (s *Stream) scopeKey(key string) string {
	cfg := s.p.cfg
	if !cfg.CallerIdentity || key == "" {
		return key
	}
	if strings.HasPrefix(key, sagakey.Prefix) && s.caller != "" && slices.Contains(cfg.SagaIssuers, s.caller) {
		return key
	}
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	for _, f := range []string{s.caller, key} {
		h.Write(buf[:binary.PutUvarint(buf[:], uint64(len(f)))])
		h.Write([]byte(f))
	}
	return callerKeyPrefix + hex.EncodeToString(h.Sum(nil))
}
