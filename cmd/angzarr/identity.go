package main

import (
	"github.com/spf13/pflag"

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
