package wasmhost

import (
	"net/http"
	"strings"
)

// xfccHeader is the header Envoy's HTTP connection manager sets with the
// client certificate it verified.
const xfccHeader = "X-Forwarded-Client-Cert"

// xfccSanitizer does what Envoy's HCM does with forward_client_cert_details
// SANITIZE_SET and set_current_client_cert_details {uri: true} before any
// filter runs: a client's own x-forwarded-client-cert never reaches the
// plugin or the upstream; on a connection with a verified client
// certificate the header names the certificate's URI SANs.
type xfccSanitizer struct {
	h    *Host        // for the listener's identity (Config.ListenerID)
	next http.Handler // the plugin's streams
}

func (x xfccSanitizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Header.Del(xfccHeader)
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		var el []string
		if by := x.h.cfg.ListenerID; by != "" {
			el = append(el, "By="+xfccValue(by))
		}
		for _, u := range r.TLS.PeerCertificates[0].URIs {
			el = append(el, "URI="+xfccValue(u.String()))
		}
		if len(el) > 0 {
			r.Header.Set(xfccHeader, strings.Join(el, ";"))
		}
	}
	x.next.ServeHTTP(w, r)
}

// xfccValue quotes a value that holds a separator, as Envoy does.
func xfccValue(v string) string {
	if !strings.ContainsAny(v, ",;=\"") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}
