package console

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// contentSecurityPolicy allows only the console's own scripts, styles and
// API: no inline script, no inline style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// CSRFHeader carries the session's CSRF token on every action.
const CSRFHeader = "X-CSRF-Token"

// principalKey is the context key of the request's principal.
type principalKey struct{}

// routes builds the handler.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /login", c.login)

	read := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, c.authorized(ActionRead, h)) }
	read("GET /api/session", c.session)
	read("GET /api/topology", c.getTopology)
	read("GET /api/domains", c.getDomains)
	read("GET /api/domains/{domain}/aggregates", c.getAggregates)
	read("GET /api/domains/{domain}/log", c.getLog)
	read("GET /api/domains/{domain}/aggregates/{root}/events", c.getEvents)
	read("GET /api/workflow", c.getWorkflow)
	read("GET /api/fanout", c.getFanout)
	read("GET /api/deadletters", c.getDeadLetters)
	read("GET /api/live", c.getLive)
	mux.Handle("POST /api/deadletters/replay", c.authorized(ActionReplay, c.action(c.replay)))
	mux.Handle("POST /api/deadletters/skip", c.authorized(ActionSkip, c.action(c.skip)))
	return secureHeaders(mux)
}

// secureHeaders sets the security headers of every response.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/login" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// authorized authenticates the request and asks the Authorizer about the
// action before h runs.
func (c *Console) authorized(a Action, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := c.authn.Authenticate(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "not logged in: open the login URL `angzarr console` printed")
			return
		}
		if err := c.authz.Authorize(r.Context(), p, a); err != nil {
			c.log.Warn("console: refused", "principal", p.Name, "action", a, "path", r.URL.Path, "err", err)
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		if a != ActionRead {
			c.log.Info("console: operator action", "principal", p.Name, "action", a, "path", r.URL.Path)
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// principal is the authenticated principal of a request.
func principal(r *http.Request) Principal {
	p, _ := r.Context().Value(principalKey{}).(Principal)
	return p
}

// action guards a state-changing endpoint against cross-site requests: a
// JSON body, the same origin when the browser says, and the session's
// CSRF token in CSRFHeader (which a cross-site form cannot set).
func (c *Console) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "actions take application/json")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
			writeError(w, http.StatusForbidden, "cross-origin action refused")
			return
		}
		want := c.csrfToken(principal(r))
		if got := r.Header.Get(CSRFHeader); subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		h(w, r)
	}
}

// login checks the token of a login URL, sets the session cookie and sends
// the browser to the console without the token in the address bar.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	ta, ok := c.authn.(*TokenAuthenticator)
	if !ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if _, err := ta.check(tok); tok == "" || err != nil {
		writeError(w, http.StatusUnauthorized, "unknown token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sessionJSON is who is logged in and the CSRF token of the session.
type sessionJSON struct {
	User string `json:"user"`
	Via  string `json:"via"`
	Role Role   `json:"role"`
	CSRF string `json:"csrf"`
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	writeJSON(w, sessionJSON{User: p.Name, Via: p.Via, Role: roleOf(r.Context(), c.authz, p), CSRF: c.csrfToken(p)})
}

// errorJSON is the body of every error answer.
type errorJSON struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorJSON{Error: msg})
}

// badRequest answers an invalid parameter.
func badRequest(w http.ResponseWriter, err error) { writeError(w, http.StatusBadRequest, err.Error()) }

// upstream answers an error of a gRPC call with the matching HTTP status.
func upstream(w http.ResponseWriter, err error) {
	st, _ := status.FromError(err)
	code := http.StatusBadGateway
	switch st.Code() {
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.FailedPrecondition:
		code = http.StatusConflict
	case codes.Unavailable:
		code = http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		code = http.StatusGatewayTimeout
	case codes.Unimplemented:
		code = http.StatusNotImplemented
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	writeError(w, code, st.Message())
}
