// Package envoy holds the bootstrap of a standalone Envoy fed by the
// control plane (bootstrap.yaml) and makes it for a given node and control
// plane address: the real-Envoy test lane runs Envoy with it, and every run
// decodes and validates it against Envoy's API.
package envoy

import (
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/bootstrap/internal_listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

//go:embed bootstrap.yaml
var bootstrapYAML []byte

// Bootstrap decodes bootstrap.yaml strictly (YAML -> JSON -> protojson, no
// unknown fields) into Envoy's v3 Bootstrap.
func Bootstrap() (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSONStrict(bootstrapYAML)
	if err != nil {
		return nil, fmt.Errorf("bootstrap.yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("bootstrap.yaml is not an Envoy v3 Bootstrap: %w", err)
	}
	return b, nil
}

// XDSTLS is a node's mTLS material for its static clusters (the control
// plane's ADS cluster): PEM files, as the local mesh's CA writes them
// (identity.CA.WriteFiles), and the SPIFFE ID the server must present.
type XDSTLS struct {
	// CertFile is the node's certificate chain, KeyFile its private key.
	CertFile, KeyFile string
	// CAFile holds the CA certificates that verify the control plane.
	CAFile string
	// ServerID is the control plane's SPIFFE ID (a URI SAN it must have).
	ServerID string
}

// check loads the files as Envoy would at start-up and fails where Envoy
// would: a key that is not the certificate's, a CA file without a
// certificate, a certificate the CA did not sign, a server ID that is not
// a SPIFFE ID.
func (x *XDSTLS) check() error {
	if !strings.HasPrefix(x.ServerID, "spiffe://") {
		return fmt.Errorf("control plane identity %q: not a SPIFFE ID", x.ServerID)
	}
	pair, err := tls.LoadX509KeyPair(x.CertFile, x.KeyFile)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	caPEM, err := os.ReadFile(x.CAFile)
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("CA %s: no PEM certificate", x.CAFile)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("node certificate %s is not a client certificate of the CA %s: %w", x.CertFile, x.CAFile, err)
	}
	return nil
}

// transportSocket is the static cluster's mTLS: the node's certificate
// (read from the files when Envoy starts; the local mesh reissues them
// only on its own start), the CA, the server's SPIFFE ID as the URI SAN it
// must present, and ALPN h2 (gRPC servers require it over TLS).
func (x *XDSTLS) transportSocket() (*core.TransportSocket, error) {
	file := func(p string) *core.DataSource {
		return &core.DataSource{Specifier: &core.DataSource_Filename{Filename: p}}
	}
	tc, err := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:   []string{"h2"},
		TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: file(x.CertFile), PrivateKey: file(x.KeyFile)}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: file(x.CAFile),
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: x.ServerID}},
			}},
		}},
	}})
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: tc}}, nil
}

// BootstrapFor is bootstrap.yaml for node id node, its ADS cluster pointed
// at the control plane at xds (HOST:PORT) over mTLS with tlsFiles (nil:
// plaintext, for a control plane run --insecure) and its admin on
// 127.0.0.1:admin (0: a port Envoy picks; run it with
// --admin-address-path to learn it), as JSON for `envoy -c`. The TLS
// files are loaded and checked as Envoy would; the result is decoded back
// strictly and checked with validate (controlplane.ValidateDeep in the
// tests).
func BootstrapFor(node, xds string, admin int, tlsFiles *XDSTLS, validate func(*bootstrapv3.Bootstrap) error) ([]byte, error) {
	b, err := Bootstrap()
	if err != nil {
		return nil, err
	}
	host, portText, err := net.SplitHostPort(xds)
	if err != nil {
		return nil, fmt.Errorf("control plane address %q: %w", xds, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("control plane port %q: %w", portText, err)
	}
	b.Node.Id = node
	adminAddr := b.GetAdmin().GetAddress().GetSocketAddress()
	if adminAddr == nil {
		return nil, errors.New("bootstrap.yaml: no admin socket address")
	}
	adminAddr.PortSpecifier = portValue(uint32(admin))
	ads := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()
	if len(ads) != 1 || ads[0].GetEnvoyGrpc() == nil {
		return nil, errors.New("bootstrap.yaml: ADS is not one envoy_grpc service")
	}
	var ts *core.TransportSocket
	if tlsFiles != nil {
		if err := tlsFiles.check(); err != nil {
			return nil, err
		}
		if ts, err = tlsFiles.transportSocket(); err != nil {
			return nil, err
		}
	}
	found := false
	for _, c := range b.GetStaticResources().GetClusters() {
		// The control plane's is the only static cluster: it gets the
		// node's mTLS.
		c.TransportSocket = ts
		if c.GetName() != ads[0].GetEnvoyGrpc().GetClusterName() {
			continue
		}
		sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		sa.Address = host
		sa.PortSpecifier = portValue(uint32(port))
		found = true
	}
	if !found {
		return nil, errors.New("bootstrap.yaml: no static cluster for ADS")
	}
	js, err := protojson.Marshal(b)
	if err != nil {
		return nil, err
	}
	back := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, back); err != nil {
		return nil, fmt.Errorf("generated bootstrap: %w", err)
	}
	if validate != nil {
		if err := validate(back); err != nil {
			return nil, fmt.Errorf("generated bootstrap: %w", err)
		}
	}
	return js, nil
}

func portValue(p uint32) *core.SocketAddress_PortValue {
	return &core.SocketAddress_PortValue{PortValue: p}
}
