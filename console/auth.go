package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Errors of authentication and authorization.
var (
	// ErrUnauthenticated: the request carries no valid identity (401).
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrForbidden: the identity may not do this (403).
	ErrForbidden = errors.New("forbidden")
)

// Principal is who makes a request.
type Principal struct {
	// Name identifies the user or workload: a user name for tokens, the
	// SPIFFE id of a client certificate.
	Name string
	// Via says how it was authenticated ("token", "certificate").
	Via string
	// Session is what the session's CSRF token is bound to (the token's
	// hash, the certificate's); empty when there is no browser session.
	Session string
}

// Authenticator tells who makes a request. It returns ErrUnauthenticated
// (wrapped or not) when the request proves no identity.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Action is what a request does.
type Action string

// Actions.
const (
	// ActionRead is every view: streams, workflows, fan-out, topology, live.
	ActionRead Action = "read"
	// ActionReplay delivers dead letters to their subscriber again.
	ActionReplay Action = "replay"
	// ActionSkip discards dead letters without delivering them.
	ActionSkip Action = "skip"
)

// Authorizer decides whether a principal may take an action. It returns nil
// or an error wrapping ErrForbidden.
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, a Action) error
}

// Role is what a principal may do in the console.
type Role string

// Roles.
const (
	// RoleNone may do nothing.
	RoleNone Role = ""
	// RoleReader may read every view.
	RoleReader Role = "reader"
	// RoleOperator may read and act on dead letters (replay, skip).
	RoleOperator Role = "operator"
)

// allows reports whether the role permits the action.
func (r Role) allows(a Action) bool {
	switch r {
	case RoleOperator:
		return a == ActionRead || a == ActionReplay || a == ActionSkip
	case RoleReader:
		return a == ActionRead
	}
	return false
}

// RoleAuthorizer maps principals to roles by name: the default Authorizer.
// A principal in neither list gets Default (RoleNone unless set).
// Identities from client certificates (#18) map the same way, by their
// SPIFFE id.
type RoleAuthorizer struct {
	// Operators may read and act.
	Operators []string
	// Readers may read.
	Readers []string
	// Default is the role of everyone else. Default RoleNone.
	Default Role
}

var _ Authorizer = (*RoleAuthorizer)(nil)

// RoleOf is the principal's role.
func (a *RoleAuthorizer) RoleOf(p Principal) Role {
	switch {
	case p.Name == "":
		return RoleNone
	case slices.Contains(a.Operators, p.Name):
		return RoleOperator
	case slices.Contains(a.Readers, p.Name):
		return RoleReader
	}
	return a.Default
}

// Authorize implements Authorizer.
func (a *RoleAuthorizer) Authorize(_ context.Context, p Principal, act Action) error {
	if role := a.RoleOf(p); !role.allows(act) {
		if role == RoleNone {
			return fmt.Errorf("%w: %s has no role in the console", ErrForbidden, p.Name)
		}
		return fmt.Errorf("%w: %s is a %s and may not %s", ErrForbidden, p.Name, role, act)
	}
	return nil
}

// roleOf is the role an Authorizer gives p, for the UI: the highest role
// whose actions it allows.
func roleOf(ctx context.Context, az Authorizer, p Principal) Role {
	if ra, ok := az.(*RoleAuthorizer); ok {
		return ra.RoleOf(p)
	}
	switch {
	case az.Authorize(ctx, p, ActionReplay) == nil:
		return RoleOperator
	case az.Authorize(ctx, p, ActionRead) == nil:
		return RoleReader
	}
	return RoleNone
}

// SessionCookie is the cookie that carries a token after /login.
const SessionCookie = "angzarr_console"

// TokenAuthenticator authenticates bearer tokens: an Authorization: Bearer
// header (scripts) or the session cookie /login sets (browsers). Tokens are
// kept hashed and compared in constant time.
type TokenAuthenticator struct {
	users map[[32]byte]string // sha256(token) → name
}

var _ Authenticator = (*TokenAuthenticator)(nil)

// NewTokenAuthenticator returns an authenticator of tokens (token → user
// name). A token shorter than 16 bytes is refused: it could be guessed.
func NewTokenAuthenticator(tokens map[string]string) (*TokenAuthenticator, error) {
	a := &TokenAuthenticator{users: map[[32]byte]string{}}
	for tok, name := range tokens {
		if len(tok) < 16 {
			return nil, fmt.Errorf("token of %s: shorter than 16 bytes", name)
		}
		if name == "" {
			return nil, errors.New("a token without a user name")
		}
		a.users[sha256.Sum256([]byte(tok))] = name
	}
	return a, nil
}

// Authenticate implements Authenticator.
func (a *TokenAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return Principal{}, fmt.Errorf("%w: Authorization is not a bearer token", ErrUnauthenticated)
		}
		tok = t
	} else if c, err := r.Cookie(SessionCookie); err == nil {
		tok = c.Value
	}
	if tok == "" {
		return Principal{}, ErrUnauthenticated
	}
	return a.check(tok)
}

// check resolves a token.
func (a *TokenAuthenticator) check(tok string) (Principal, error) {
	h := sha256.Sum256([]byte(tok))
	for k, name := range a.users {
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			return Principal{Name: name, Via: "token", Session: fmt.Sprintf("%x", h)}, nil
		}
	}
	return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

// CertificateAuthenticator authenticates the client certificate of a TLS
// connection by its first URI SAN (a SPIFFE id such as
// spiffe://angzarr.local/user/alice): the seam for the mesh identities of
// #18. The listener must verify client certificates (tls.Config with
// ClientAuth RequireAndVerifyClientCert and the mesh's CA).
type CertificateAuthenticator struct{}

var _ Authenticator = CertificateAuthenticator{}

// Authenticate implements Authenticator.
func (CertificateAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return Principal{}, fmt.Errorf("%w: no verified client certificate", ErrUnauthenticated)
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if len(leaf.URIs) == 0 {
		return Principal{}, fmt.Errorf("%w: the client certificate has no URI SAN", ErrUnauthenticated)
	}
	sum := sha256.Sum256(leaf.Raw)
	return Principal{Name: leaf.URIs[0].String(), Via: "certificate", Session: fmt.Sprintf("%x", sum)}, nil
}
