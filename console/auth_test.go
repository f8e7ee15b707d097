package console_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/console"
)

// TestClientCertificatesAreIdentities: behind a TLS listener that verifies
// client certificates, the certificate's SPIFFE id is the principal, and
// the role authorizer maps it like any user name (the seam for #18).
func TestClientCertificatesAreIdentities(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(id string) tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse(id)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	const operator = "spiffe://angzarr.local/user/olga"
	c, err := console.New(console.Config{EventService: "127.0.0.1:1", Authenticator: console.CertificateAuthenticator{},
		Authorizer: &console.RoleAuthorizer{Operators: []string{operator}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := httptest.NewUnstartedServer(c.Handler())
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()

	session := func(cert *tls.Certificate) (int, map[string]string) {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/api/session")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]string{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	olga, mallory := leaf(operator), leaf("spiffe://angzarr.local/user/mallory")
	if code, s := session(&olga); code != 200 || s["user"] != operator || s["role"] != "operator" || s["via"] != "certificate" {
		t.Errorf("olga's certificate: %d %v", code, s)
	}
	if code, _ := session(&mallory); code != http.StatusForbidden {
		t.Errorf("an identity without a role: %d, want 403", code)
	}
	if code, _ := session(nil); code != http.StatusUnauthorized {
		t.Errorf("no certificate: %d, want 401", code)
	}
}
