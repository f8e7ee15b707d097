package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Config is how a binary finds its identity: the command-line flags
// --cert, --key, --ca, --trust-domain and --insecure.
type Config struct {
	// CertFile is the workload's certificate chain (PEM, leaf first) with
	// its SPIFFE ID as URI SAN. Required unless Insecure.
	CertFile string
	// KeyFile is its private key (PEM). Required unless Insecure.
	KeyFile string
	// CAFile is the CA bundle (PEM) peers' certificates must chain to.
	// Required unless Insecure.
	CAFile string
	// TrustDomain peers must belong to. Default: the certificate's.
	TrustDomain string
	// Insecure serves and dials plaintext without identities (a warning is
	// logged). Default false: mTLS.
	Insecure bool
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	if c.Insecure {
		if c.CertFile != "" || c.KeyFile != "" || c.CAFile != "" {
			return errors.New("identity: --insecure with certificate files: choose one")
		}
		return nil
	}
	var errs []error
	for _, f := range []struct{ name, val string }{{"cert", c.CertFile}, {"key", c.KeyFile}, {"ca", c.CAFile}} {
		if f.val == "" {
			errs = append(errs, fmt.Errorf("identity: --%s: required (or --insecure for plaintext)", f.name))
		}
	}
	return errors.Join(errs...)
}

// Load loads the files (nil for Insecure, after logging the warning that
// names the component).
func (c Config) Load(component string, log *slog.Logger) (*Files, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Insecure {
		if log == nil {
			log = slog.Default()
		}
		log.Warn("INSECURE: plaintext without workload identities; anyone who reaches the port is trusted", "component", component)
		return nil, nil
	}
	return LoadFiles(c.CertFile, c.KeyFile, c.CAFile, c.TrustDomain)
}

// ServerTLS is the TLS configuration of a server that requires a client
// certificate of f's trust domain chaining to f's CA bundle. The
// certificate and bundle are read from f at every handshake.
func ServerTLS(f *Files) *tls.Config {
	c := tlsconfig.MTLSServerConfig(f, f, tlsconfig.AuthorizeMemberOf(f.TrustDomain()))
	c.MinVersion = tls.VersionTLS13
	return c
}

// ClientTLS is the TLS configuration of a client presenting f's
// certificate to a server that must be of f's trust domain, and be server
// when it is not zero.
func ClientTLS(f *Files, server ID) *tls.Config {
	auth := tlsconfig.AuthorizeMemberOf(f.TrustDomain())
	if !server.IsZero() {
		auth = tlsconfig.AuthorizeID(server)
	}
	c := tlsconfig.MTLSClientConfig(f, f, auth)
	c.MinVersion = tls.VersionTLS13
	return c
}

// ServerOption is the gRPC server's transport credentials: mTLS from f,
// or plaintext when f is nil (Config.Insecure).
func ServerOption(f *Files) grpc.ServerOption {
	if f == nil {
		return grpc.Creds(insecure.NewCredentials())
	}
	return grpc.Creds(credentials.NewTLS(ServerTLS(f)))
}

// DialOption is a gRPC client's transport credentials: mTLS from f towards
// a server of f's trust domain (server when not zero), or plaintext when
// f is nil.
func DialOption(f *Files, server ID) grpc.DialOption {
	if f == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(ClientTLS(f, server)))
}

// leafID is the SPIFFE ID of a verified peer certificate chain's leaf.
func leafID(certs []*x509.Certificate) (ID, error) {
	if len(certs) == 0 {
		return ID{}, errNoIdentity
	}
	return idFromCert(certs[0])
}
