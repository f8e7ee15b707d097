package identity

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Files is a workload's certificate material on disk, re-read when a file
// changes (checked at every TLS handshake: a rotated certificate or CA
// bundle takes effect on the next connection, no restart).
type Files struct {
	certFile, keyFile, caFile string
	td                        spiffeid.TrustDomain

	mu     sync.Mutex
	stamps [3]stamp
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

var (
	_ x509svid.Source   = (*Files)(nil)
	_ x509bundle.Source = (*Files)(nil)
)

// stamp is what tells a file changed.
type stamp struct {
	mod  time.Time
	size int64
}

// LoadFiles reads the certificate chain (PEM, leaf first), its key (PEM,
// PKCS#8) and the CA bundle (PEM) of the workload. The trust domain is the
// certificate's unless td is set, in which case they must agree.
func LoadFiles(certFile, keyFile, caFile, td string) (*Files, error) {
	f := &Files{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if err := f.reload(true); err != nil {
		return nil, err
	}
	own := f.svid.ID.TrustDomain()
	if td != "" {
		want, err := spiffeid.TrustDomainFromString(td)
		if err != nil {
			return nil, fmt.Errorf("identity: trust domain %q: %w", td, err)
		}
		if want != own {
			return nil, fmt.Errorf("identity: %s is in trust domain %q, not %q", f.svid.ID, own.Name(), td)
		}
	}
	f.td = own
	if err := f.reload(true); err != nil { // the bundle, now for the right trust domain
		return nil, err
	}
	return f, nil
}

// ID is the workload's own identity.
func (f *Files) ID() ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.svid.ID
}

// TrustDomain is the trust domain peers must belong to.
func (f *Files) TrustDomain() spiffeid.TrustDomain { return f.td }

// GetX509SVID implements x509svid.Source: the current certificate.
func (f *Files) GetX509SVID() (*x509svid.SVID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(false); err != nil {
		return nil, err
	}
	return f.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source: the current CA
// bundle, for the workload's own trust domain only.
func (f *Files) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(false); err != nil {
		return nil, err
	}
	if td != f.td {
		return nil, fmt.Errorf("identity: trust domain %q is not trusted (only %q)", td.Name(), f.td.Name())
	}
	return f.bundle, nil
}

// reload re-reads the files when one changed (or always when force). A
// file that cannot be read fails closed; content that does not parse (a
// rotation half written) keeps the previous material until it does.
func (f *Files) reload(force bool) error {
	var now [3]stamp
	for i, p := range []string{f.certFile, f.keyFile, f.caFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		now[i] = stamp{fi.ModTime(), fi.Size()}
	}
	if !force && now == f.stamps {
		return nil
	}
	svid, err := x509svid.Load(f.certFile, f.keyFile)
	if err != nil {
		return f.keepOr(fmt.Errorf("identity: certificate %s: %w", f.certFile, err))
	}
	if _, _, err := Workload(svid.ID); err != nil {
		return f.keepOr(fmt.Errorf("identity: certificate %s: %w", f.certFile, err))
	}
	td := f.td
	if td.IsZero() {
		td = svid.ID.TrustDomain()
	}
	b, err := x509bundle.Load(td, f.caFile)
	if err != nil {
		return f.keepOr(fmt.Errorf("identity: CA bundle %s: %w", f.caFile, err))
	}
	f.svid, f.bundle, f.stamps = svid, b, now
	return nil
}

// keepOr returns err when nothing was loaded yet, nil (keeping the loaded
// material) otherwise.
func (f *Files) keepOr(err error) error {
	if f.svid == nil || f.bundle == nil {
		return err
	}
	return nil
}

// errNoIdentity is returned for a peer without a certificate.
var errNoIdentity = errors.New("no client certificate")
