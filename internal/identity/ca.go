package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// CA is a small certificate authority issuing workload certificates of one
// trust domain: for tests and `angzarr dev`. Production uses the mesh's
// (istiod, cert-manager, SPIRE).
type CA struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
}

// NewCA creates a CA for trust domain td, valid from now for validity.
func NewCA(td string, validity time.Duration) (*CA, error) {
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, fmt.Errorf("identity: trust domain %q: %w", td, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"angzarr"}, CommonName: "angzarr CA " + t.Name()},
		URIs:                  []*url.URL{t.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{td: t, cert: cert, key: key}, nil
}

// TrustDomain is the CA's trust domain.
func (ca *CA) TrustDomain() string { return ca.td.Name() }

// CertPEM is the CA certificate, the bundle peers trust.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Issued is a workload certificate and its key, PEM.
type Issued struct {
	ID      ID
	CertPEM []byte
	KeyPEM  []byte
}

// Issue issues the certificate of workload ns/sa, valid from notBefore
// until notAfter (zero: from now for a year).
func (ca *CA) Issue(ns, sa string, notBefore, notAfter time.Time) (*Issued, error) {
	id, err := New(ca.td.Name(), ns, sa)
	if err != nil {
		return nil, err
	}
	return ca.IssueID(id, notBefore, notAfter)
}

// IssueID issues the certificate of any SPIFFE ID of the CA's trust
// domain (tests use it for IDs of other shapes).
func (ca *CA) IssueID(id spiffeid.ID, notBefore, notAfter time.Time) (*Issued, error) {
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Minute)
	}
	if notAfter.IsZero() {
		notAfter = notBefore.Add(365 * 24 * time.Hour)
	}
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"angzarr"}},
		URIs:         []*url.URL{id.URL()},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{
		ID:      id,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// WriteFiles writes <dir>/<name>.crt, <name>.key (mode 0600) and ca.crt,
// and returns the identity configuration that loads them.
func (ca *CA) WriteFiles(dir, name string, is *Issued) (Config, error) {
	c := Config{
		CertFile: filepath.Join(dir, name+".crt"),
		KeyFile:  filepath.Join(dir, name+".key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Config{}, err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{c.CAFile, ca.CertPEM(), 0o644}, {c.KeyFile, is.KeyPEM, 0o600}, {c.CertFile, is.CertPEM, 0o644}} {
		if err := writeAtomic(f.path, f.data, f.mode); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// Save writes the CA's certificate and key to dir (ca.crt, ca.key).
func (ca *CA) Save(dir string) error {
	kder, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "ca.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "ca.crt"), ca.CertPEM(), 0o644)
}

// LoadCA reads a CA saved by Save.
func LoadCA(dir string) (*CA, error) {
	cb, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, fmt.Errorf("identity: %s: not a PEM CA certificate and key", dir)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %s/ca.crt: %w", dir, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kp.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %s/ca.key: %w", dir, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || len(cert.URIs) != 1 {
		return nil, errors.New("identity: " + dir + ": not an angzarr CA")
	}
	td, err := spiffeid.TrustDomainFromURI(cert.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("identity: %s/ca.crt: %w", dir, err)
	}
	return &CA{td: td, cert: cert, key: signer}, nil
}

// writeAtomic writes data to a temporary file beside path and renames it,
// so a reader never sees half a certificate.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}
