package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// XFCCHeader is the header a sidecar sets with the client certificate it
// verified.
const XFCCHeader = "x-forwarded-client-cert"

// ErrUnauthenticated is wrapped by every failure to tell who calls.
var ErrUnauthenticated = errors.New("unauthenticated")

// Resolver tells who calls a gRPC server.
type Resolver struct {
	// TrustXFCC takes the caller from the x-forwarded-client-cert header
	// (the last element: the one the nearest proxy added) instead of the
	// connection's certificate. Only for a server that sits behind a
	// sidecar which terminates mTLS and sanitizes the header, and that
	// nothing else can reach. Default false.
	TrustXFCC bool
}

// Caller returns the identity of the caller of the gRPC call in ctx.
func (r Resolver) Caller(ctx context.Context) (ID, error) {
	if r.TrustXFCC {
		return fromXFCC(metadata.ValueFromIncomingContext(ctx, XFCCHeader))
	}
	return FromPeer(ctx)
}

// FromPeer returns the identity in the verified client certificate of the
// gRPC connection in ctx.
func FromPeer(ctx context.Context) (ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ID{}, fmt.Errorf("%w: no peer", ErrUnauthenticated)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ID{}, fmt.Errorf("%w: not a TLS connection", ErrUnauthenticated)
	}
	certs := info.State.PeerCertificates
	if len(certs) == 0 {
		return ID{}, fmt.Errorf("%w: %v", ErrUnauthenticated, errNoIdentity)
	}
	// The connection's certificate, verified at the handshake, is the same
	// for each of its calls.
	id, err := certIDs.get(certs[0], func() (ID, error) { return leafID(certs) })
	if err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return id, nil
}

// fromXFCC returns the URI of the last element of the header, which must
// occur once.
func fromXFCC(vals []string) (ID, error) {
	switch len(vals) {
	case 0:
		return ID{}, fmt.Errorf("%w: no %s header", ErrUnauthenticated, XFCCHeader)
	case 1:
	default:
		return ID{}, fmt.Errorf("%w: %d %s headers", ErrUnauthenticated, len(vals), XFCCHeader)
	}
	if len(vals[0]) > maxCachedHeaderLen {
		return xfccID(vals[0])
	}
	return headerIDs.get(vals[0], func() (ID, error) { return xfccID(vals[0]) })
}

// xfccID is the identity of the last element of an x-forwarded-client-cert
// value.
func xfccID(h string) (ID, error) {
	els, err := ParseXFCC(h)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	last := els[len(els)-1]
	if len(last.URI) != 1 {
		return ID{}, fmt.Errorf("%w: %s names %d URIs, want 1", ErrUnauthenticated, XFCCHeader, len(last.URI))
	}
	id, err := Parse(last.URI[0])
	if err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return id, nil
}

// idFromCert is the workload identity in a certificate's URI SAN.
func idFromCert(c *x509.Certificate) (ID, error) {
	id, err := x509svid.IDFromCert(c)
	if err != nil {
		return ID{}, err
	}
	if _, _, err := Workload(id); err != nil {
		return ID{}, err
	}
	return id, nil
}
