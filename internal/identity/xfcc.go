package identity

import (
	"errors"
	"fmt"
	"strings"
)

// XFCCElement is one element of an x-forwarded-client-cert header: what
// one proxy verified about its client's certificate. See Envoy's
// x-forwarded-client-cert documentation.
type XFCCElement struct {
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

// Bounds of a header the parser accepts.
const (
	maxXFCCBytes    = 64 << 10
	maxXFCCElements = 32
)

var errXFCC = errors.New("malformed " + XFCCHeader)

// ParseXFCC parses a header value: elements separated by ',', each a list
// of key=value pairs separated by ';', values double-quoted (with '\'
// escapes) when they contain one of ,;=". Keys are By, Hash, Cert, Chain,
// Subject, URI and DNS, case-insensitively; anything else is an error.
func ParseXFCC(h string) ([]XFCCElement, error) {
	if len(h) > maxXFCCBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errXFCC, len(h), maxXFCCBytes)
	}
	p := xfccParser{s: h}
	var out []XFCCElement
	for {
		if len(out) == maxXFCCElements {
			return nil, fmt.Errorf("%w: more than %d elements", errXFCC, maxXFCCElements)
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

type xfccParser struct {
	s string
	i int
}

// element parses pairs up to ',' or the end.
func (p *xfccParser) element() (XFCCElement, error) {
	var el XFCCElement
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
			return el, fmt.Errorf("%w: unknown key %q at byte %d", errXFCC, key, p.i)
		}
		if p.i == len(p.s) || p.s[p.i] == ',' {
			return el, nil
		}
		p.i++ // ';'
	}
}

// key reads up to '=' and consumes it.
func (p *xfccParser) key() (string, error) {
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '=':
			if p.i == start {
				return "", fmt.Errorf("%w: empty key at byte %d", errXFCC, p.i)
			}
			k := p.s[start:p.i]
			p.i++
			return k, nil
		case c == ',' || c == ';' || c == '"' || c < 0x21 || c > 0x7e:
			return "", fmt.Errorf("%w: byte %d: %q in a key", errXFCC, p.i, c)
		}
		p.i++
	}
	return "", fmt.Errorf("%w: key without '=' at byte %d", errXFCC, start)
}

// value reads a bare or quoted value, leaving the position on the
// separator (',' or ';') or the end.
func (p *xfccParser) value() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		var b strings.Builder
		for p.i < len(p.s) {
			c := p.s[p.i]
			switch {
			case c == '\\':
				if p.i+1 == len(p.s) {
					return "", fmt.Errorf("%w: escape at the end", errXFCC)
				}
				b.WriteByte(p.s[p.i+1])
				p.i += 2
				continue
			case c == '"':
				p.i++
				if p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != ';' {
					return "", fmt.Errorf("%w: byte %d: %q after a quoted value", errXFCC, p.i, p.s[p.i])
				}
				return b.String(), nil
			case c < 0x20 || c == 0x7f:
				return "", fmt.Errorf("%w: control byte at %d", errXFCC, p.i)
			}
			b.WriteByte(c)
			p.i++
		}
		return "", fmt.Errorf("%w: unterminated quoted value", errXFCC)
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ',' || c == ';' {
			break
		}
		if c == '=' || c == '"' || c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("%w: byte %d: %q in an unquoted value", errXFCC, p.i, c)
		}
		p.i++
	}
	return p.s[start:p.i], nil
}
