package devmesh

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"io/fs"
	"net"
	"path/filepath"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// The local mesh's trust domain and the namespace of its identities.
const (
	TrustDomain = "angzarr.dev"
	namespace   = "angzarr-dev"
	// caValidity is how long the local CA is valid; certificates are
	// reissued on every start.
	caValidity = 10 * 365 * 24 * time.Hour
)

// meshIdentity is the local CA and the certificate of each component,
// written under DataDir/identity.
type meshIdentity struct {
	dir   string
	ca    *identity.CA
	files map[string]*identity.Files // by service account
}

// newMeshIdentity loads the data directory's CA (creating it on the first
// start) and issues a certificate for each service account.
func newMeshIdentity(dataDir string, accounts []string) (*meshIdentity, error) {
	dir := filepath.Join(dataDir, endpoints.IdentityDir)
	ca, err := identity.LoadCA(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if ca, err = identity.NewCA(TrustDomain, caValidity); err == nil {
			err = ca.Save(dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("local CA in %s: %w", dir, err)
	}
	m := &meshIdentity{dir: dir, ca: ca, files: map[string]*identity.Files{}}
	for _, sa := range append(accounts, operatorAccount) {
		is, err := ca.Issue(namespace, sa, time.Time{}, time.Time{})
		if err != nil {
			return nil, err
		}
		c, err := ca.WriteFiles(dir, sa, is)
		if err != nil {
			return nil, err
		}
		if m.files[sa], err = identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, TrustDomain); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// operatorAccount is the client verbs' identity (endpoints.OperatorFiles).
const operatorAccount = "operator"

// id is the SPIFFE ID of a service account of the mesh.
func id(sa string) string { return "spiffe://" + TrustDomain + "/ns/" + namespace + "/sa/" + sa }

// config is the identity configuration (files) of a service account.
func (m *meshIdentity) config(sa string) identity.Config {
	return identity.Config{CertFile: filepath.Join(m.dir, sa+".crt"), KeyFile: filepath.Join(m.dir, sa+".key"), CAFile: filepath.Join(m.dir, "ca.crt"), TrustDomain: TrustDomain}
}

// serverListener wraps lis in TLS with sa's certificate, requiring client
// certificates of the mesh (for servers that take no credentials of their
// own: the sagas and projectors).
func (m *meshIdentity) serverListener(lis net.Listener, sa string) net.Listener {
	cfg := identity.ServerTLS(m.files[sa])
	cfg.NextProtos = []string{"h2"}
	return tls.NewListener(lis, cfg)
}

// Service accounts of the mesh's components.
const (
	eventServiceAccount = "angzarr-eventsvc"
	controlPlaneAccount = "angzarr-controlplane"
	// consoleAccount is the web console's: it reads every domain and, for
	// the developer (its operator), replays and skips dead letters.
	consoleAccount = "angzarr-console"
)

// proxyAccount is the service account of a domain's proxy.
func proxyAccount(domain string) string { return domain }

// servedOverMTLS reports whether the event service calls a shop
// component of kind k (with its client certificate), which therefore
// serves mTLS with an identity of its own: sagas, projectors, process
// managers and upcasters. The business logic is called by its proxy.
func servedOverMTLS(k shop.Kind) bool {
	return k == shop.Saga || k == shop.Projector || k == shop.ProcessManager || k == shop.Upcaster
}

// subscriberAccount is the service account of a saga, projector, process
// manager or upcaster.
func subscriberAccount(name string) string { return "subscriber-" + name }
