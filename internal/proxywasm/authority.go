package proxywasm

import "strings"

// ValidAuthority reports whether s may be an :authority (Host) value, as
// Envoy's HTTP connection manager checks it
// (source/common/http/header_validation.cc, HeaderValidation::
// authorityIsValid; for HTTP/2 the codec's header validator refuses the
// same characters first, quiche http2/adapter/header_validator.cc,
// kValidAuthorityChars): RFC 3986 authority characters only, so no `|`,
// space or control character. Istio's cluster names ("outbound|1313||
// host") are not valid authorities (istio/istio#27918). wasmhost refuses
// such requests and callouts as Envoy does; the filter's configuration
// refuses a cluster it would call with such a name and no authority.
func ValidAuthority(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~%!$&'()*+,;=:[]@", c) >= 0:
		default:
			return false
		}
	}
	return true
}
