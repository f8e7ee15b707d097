package wasmhost_test

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// TestXFCCSanitizeSet: as Envoy's HCM with SANITIZE_SET, a client's own
// x-forwarded-client-cert never passes; on an mTLS listener the header
// names the verified client certificate.
func TestXFCCSanitizeSet(t *testing.T) {
	forged := map[string]string{"x-forwarded-client-cert": "URI=spiffe://angzarr.test/ns/ops/sa/operator"}

	t.Run("cleartext: dropped", func(t *testing.T) {
		e := newEnv(t)
		er := readEcho(t, e.do(t, "headers", http.MethodGet, "/echo", "", forged))
		if v, ok := er.Headers["X-Forwarded-Client-Cert"]; ok {
			t.Fatalf("forged header reached the upstream: %v", v)
		}
	})

	t.Run("mTLS: set from the client certificate", func(t *testing.T) {
		dir := t.TempDir()
		ca, err := identity.NewCA("angzarr.test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		files := func(ns, sa string) (*identity.Files, identity.Config) {
			is, err := ca.Issue(ns, sa, time.Time{}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			c, err := ca.WriteFiles(filepath.Join(dir, sa), sa, is)
			if err != nil {
				t.Fatal(err)
			}
			f, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, "")
			if err != nil {
				t.Fatal(err)
			}
			return f, c
		}
		proxyID, _ := files("shop", "proxy")
		e := newEnv(t, func(c *wasmhost.Config) {
			c.ListenerTLS, c.ListenerID = identity.ServerTLS(proxyID), proxyID.ID().String()
		})
		clientID, _ := files("shop", "web")
		ctls := identity.ClientTLS(clientID, proxyID.ID())
		ctls.NextProtos = []string{"h2"}
		tr := &http.Transport{TLSClientConfig: ctls, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		e.http = &http.Client{Transport: tr, Timeout: 20 * time.Second}
		req, err := http.NewRequest(http.MethodGet, "https://"+e.proxy.Addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-case", "headers")
		req.Header.Set("x-forwarded-client-cert", forged["x-forwarded-client-cert"])
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("HTTP/%d over TLS, want 2", resp.ProtoMajor)
		}
		er := readEcho(t, resp)
		want := "By=spiffe://angzarr.test/ns/shop/sa/proxy;URI=spiffe://angzarr.test/ns/shop/sa/web"
		if got := er.Headers["X-Forwarded-Client-Cert"]; len(got) != 1 || got[0] != want {
			t.Fatalf("x-forwarded-client-cert %q, want %q", got, want)
		}
		els, err := identity.ParseXFCC(want)
		if err != nil || els[0].URI[0] != clientID.ID().String() {
			t.Fatalf("does not parse back: %v, %v", els, err)
		}

		// Without a client certificate the handshake fails.
		bare := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}, ForceAttemptHTTP2: true} //nolint:gosec // the attacker
		t.Cleanup(bare.CloseIdleConnections)
		if _, err := (&http.Client{Transport: bare, Timeout: 20 * time.Second}).Do(req); err == nil {
			t.Fatal("a client without a certificate was served")
		}
	})
}
