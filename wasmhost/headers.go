package wasmhost

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// headerMap is an ordered multimap with lower-case keys, like Envoy's
// HeaderMap: pseudo-headers first, repeated keys as separate entries.
type headerMap struct {
	kv [][2]string
}

// get returns the first value of k (Envoy returns only the first).
func (m *headerMap) get(k string) (string, bool) {
	k = strings.ToLower(k)
	for _, p := range m.kv {
		if p[0] == k {
			return p[1], true
		}
	}
	return "", false
}

func (m *headerMap) add(k, v string) { m.kv = append(m.kv, [2]string{strings.ToLower(k), v}) }

// set replaces the first entry of k and removes the others, or appends.
func (m *headerMap) set(k, v string) {
	k = strings.ToLower(k)
	out := m.kv[:0]
	found := false
	for _, p := range m.kv {
		if p[0] == k {
			if found {
				continue
			}
			found = true
			p[1] = v
		}
		out = append(out, p)
	}
	m.kv = out
	if !found {
		m.kv = append(m.kv, [2]string{k, v})
	}
}

func (m *headerMap) remove(k string) {
	k = strings.ToLower(k)
	out := m.kv[:0]
	for _, p := range m.kv {
		if p[0] != k {
			out = append(out, p)
		}
	}
	m.kv = out
}

// setPairs replaces the whole map with pairs, which it keeps (keys
// lower-cased in place): they come fresh from decodePairs.
func (m *headerMap) setPairs(pairs [][2]string) {
	for i := range pairs {
		pairs[i][0] = strings.ToLower(pairs[i][0])
	}
	m.kv = pairs
}

// byteSize is Envoy's HeaderMap::byteSize: the sum of key and value lengths.
func (m *headerMap) byteSize() int {
	n := 0
	for _, p := range m.kv {
		n += len(p[0]) + len(p[1])
	}
	return n
}

// appendHTTP appends the entries of h, keys lower-cased and sorted for a
// stable order (Go's http.Header does not keep wire order).
func (m *headerMap) appendHTTP(h http.Header) {
	var buf [16]string
	keys := buf[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lk := lowerKey(k)
		for _, v := range h[k] {
			m.kv = append(m.kv, [2]string{lk, v})
		}
	}
}

// toHTTP converts the regular (non-pseudo) entries to an http.Header,
// skipping hop-by-hop and framing headers the proxy manages itself.
func (m *headerMap) toHTTP(dst http.Header) {
	// One backing array for the values of the names seen first here, as
	// net/textproto does; a repeated name appends (and reallocates).
	var vals []string
	for _, p := range m.kv {
		if strings.HasPrefix(p[0], ":") || hopHeader(p[0]) {
			continue
		}
		k := canonicalKey(p[0])
		if old, ok := dst[k]; ok {
			dst[k] = append(old, p[1])
			continue
		}
		if len(vals) == 0 {
			vals = make([]string, len(m.kv))
		}
		vals[0] = p[1]
		dst[k] = vals[:1:1]
		vals = vals[1:]
	}
}

func hopHeader(k string) bool {
	switch k {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length", "trailer", "host":
		return true
	}
	return false
}

// requestHeaderMap builds Envoy's view of a downstream request's headers.
func requestHeaderMap(r *http.Request) *headerMap {
	m := &headerMap{kv: make([][2]string, 0, 4+len(r.Header))}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	m.kv = append(m.kv,
		[2]string{":authority", r.Host},
		[2]string{":path", r.URL.RequestURI()},
		[2]string{":method", r.Method},
		[2]string{":scheme", scheme},
	)
	m.appendHTTP(r.Header)
	if r.ContentLength > 0 {
		if _, ok := m.get("content-length"); !ok {
			m.add("content-length", itoa(r.ContentLength))
		}
	}
	return m
}

// responseHeaderMap builds Envoy's view of response headers.
func responseHeaderMap(code int, h http.Header) *headerMap {
	m := &headerMap{kv: make([][2]string, 0, 1+len(h))}
	m.kv = append(m.kv, [2]string{":status", statusText(code)})
	m.appendHTTP(h)
	return m
}

func trailerMap(h http.Header) *headerMap {
	m := &headerMap{}
	m.appendHTTP(h)
	return m
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// statusText is code in decimal, without allocating for the usual codes.
func statusText(code int) string {
	switch code {
	case http.StatusOK:
		return "200"
	case http.StatusNotFound:
		return "404"
	case http.StatusServiceUnavailable:
		return "503"
	}
	return itoa(int64(code))
}
