package main

import (
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// identityFlags are a server's or client's workload identity: mTLS from
// certificate files, or --insecure for plaintext (a warning is logged).
type identityFlags struct {
	cfg identity.Config
}

func (i *identityFlags) add(f *pflag.FlagSet) {
	f.StringVar(&i.cfg.CertFile, "cert", "", "workload certificate (PEM, leaf first) with its SPIFFE ID spiffe://<trust-domain>/ns/<ns>/sa/<sa> as URI SAN; re-read when it changes")
	f.StringVar(&i.cfg.KeyFile, "key", "", "private key of --cert (PEM)")
	f.StringVar(&i.cfg.CAFile, "ca", "", "CA bundle (PEM) peers must chain to; re-read when it changes")
	f.StringVar(&i.cfg.TrustDomain, "trust-domain", "", "trust domain peers must belong to (default: the certificate's)")
	f.BoolVar(&i.cfg.Insecure, "insecure", false, "plaintext without workload identities or authorization (logs a warning)")
}

// clientIdentityFlags are a client verb's certificate: mTLS when --cert,
// --key and --ca are given; otherwise the operator certificate of the
// running local mesh when it requires mTLS, else plaintext.
type clientIdentityFlags struct {
	cfg identity.Config
}

func (c *clientIdentityFlags) add(f *pflag.FlagSet) {
	f.StringVar(&c.cfg.CertFile, "cert", "", "client certificate (PEM) with the caller's SPIFFE ID, e.g. an operator's: mTLS with --key and --ca")
	f.StringVar(&c.cfg.KeyFile, "key", "", "private key of --cert (PEM)")
	f.StringVar(&c.cfg.CAFile, "ca", "", "CA bundle (PEM) the server must chain to")
}

// dial is the transport the flags describe; without flags, the local
// mesh's operator certificate when it runs mTLS, else plaintext.
func (c *clientIdentityFlags) dial() (grpc.DialOption, error) {
	if c.cfg == (identity.Config{}) {
		return nil, nil // the client package decides (client.DialFor)
	}
	if err := c.cfg.Validate(); err != nil {
		return nil, err
	}
	f, err := identity.LoadFiles(c.cfg.CertFile, c.cfg.KeyFile, c.cfg.CAFile, "")
	if err != nil {
		return nil, err
	}
	return identity.DialOption(f, identity.ID{}), nil
}
