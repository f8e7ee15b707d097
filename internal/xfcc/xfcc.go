// Package xfcc parses the x-forwarded-client-cert header Envoy's HTTP
// connection manager sets with the client certificate it verified. Pure Go
// without dependencies: the Wasm filter uses it as well as the servers.
package xfcc

import (
	"errors"
	"fmt"
	"strings"
)

// Element is one element of an x-forwarded-client-cert header: what
// one proxy verified about its client's certificate. See Envoy's
// x-forwarded-client-cert documentation.
type Element struct {
	// By are the URI SANs of the proxy's own certificate.
	By []string
	// Hash is the SHA-256 of the client certificate, hex.
	Hash string
	// Cert and Chain are the URL-encoded PEM certificate and chain.
	Cert, Chain string
	// Subject is the client certificate's subject.
	Subject string
	// URI are the client certificate's URI SANs.
	URI []string
	// DNS are the client certificate's DNS SANs.
	DNS []string
}

// Bounds of a header Parse accepts.
const (
	MaxBytes    = 64 << 10
	MaxElements = 32
)

var errMalformed = errors.New("malformed x-forwarded-client-cert")

// ParseXFCC parses a header value: elements separated by ',', each a list
// of key=value pairs separated by ';', values double-quoted (with '\'
// escapes) when they contain one of ,;=". Keys are By, Hash, Cert, Chain,
// Subject, URI and DNS, case-insensitively; anything else is an error.
func Parse(h string) ([]Element, error) {
	if len(h) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errMalformed, len(h), MaxBytes)
	}
	p := parser{s: h}
	var out []Element
	for {
		if len(out) == MaxElements {
			return nil, fmt.Errorf("%w: more than %d elements", errMalformed, MaxElements)
		}
		el, err := p.element()
		if err != nil {
			return nil, err
		}
		out = append(out, el)
		if p.i == len(p.s) {
			return out, nil
		}
		p.i++ // ','
	}
}

type parser struct {
	s string
	i int
}

// element parses pairs up to ',' or the end.
func (p *parser) element() (Element, error) {
	var el Element
	for {
		key, err := p.key()
		if err != nil {
			return el, err
		}
		val, err := p.value()
		if err != nil {
			return el, err
		}
		switch strings.ToLower(key) {
		case "by":
			el.By = append(el.By, val)
		case "hash":
			el.Hash = val
		case "cert":
			el.Cert = val
		case "chain":
			el.Chain = val
		case "subject":
			el.Subject = val
		case "uri":
			el.URI = append(el.URI, val)
		case "dns":
			el.DNS = append(el.DNS, val)
		default:
			return el, fmt.Errorf("%w: unknown key %q at byte %d", errMalformed, key, p.i)
		}
		if p.i == len(p.s) || p.s[p.i] == ',' {
			return el, nil
		}
		p.i++ // ';'
	}
}

// key reads up to '=' and consumes it.
func (p *parser) key() (string, error) {
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '=':
			if p.i == start {
				return "", fmt.Errorf("%w: empty key at byte %d", errMalformed, p.i)
			}
			k := p.s[start:p.i]
			p.i++
			return k, nil
		case c == ',' || c == ';' || c == '"' || c < 0x21 || c > 0x7e:
			return "", fmt.Errorf("%w: byte %d: %q in a key", errMalformed, p.i, c)
		}
		p.i++
	}
	return "", fmt.Errorf("%w: key without '=' at byte %d", errMalformed, start)
}

// value reads a bare or quoted value, leaving the position on the
// separator (',' or ';') or the end.
func (p *parser) value() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		var b strings.Builder
		for p.i < len(p.s) {
			c := p.s[p.i]
			switch {
			case c == '\\':
				if p.i+1 == len(p.s) {
					return "", fmt.Errorf("%w: escape at the end", errMalformed)
				}
				b.WriteByte(p.s[p.i+1])
				p.i += 2
				continue
			case c == '"':
				p.i++
				if p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != ';' {
					return "", fmt.Errorf("%w: byte %d: %q after a quoted value", errMalformed, p.i, p.s[p.i])
				}
				return b.String(), nil
			case c < 0x20 || c == 0x7f:
				return "", fmt.Errorf("%w: control byte at %d", errMalformed, p.i)
			}
			b.WriteByte(c)
			p.i++
		}
		return "", fmt.Errorf("%w: unterminated quoted value", errMalformed)
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ',' || c == ';' {
			break
		}
		if c == '=' || c == '"' || c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("%w: byte %d: %q in an unquoted value", errMalformed, p.i, c)
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

// Caller is the single URI SAN of the header's last element: the client of
// the proxy nearest to the reader (which appended or set that element). ""
// when the header is malformed, or the element names no URI or several.
func Caller(h string) string {
	els, err := Parse(h)
	if err != nil {
		return ""
	}
	if u := els[len(els)-1].URI; len(u) == 1 {
		return u[0]
	}
	return ""
}
