package identity

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ID is a validated workload identity spiffe://<td>/ns/<ns>/sa/<sa>.
type ID = spiffeid.ID

// ErrInvalidID wraps every identity that is not a workload SPIFFE ID.
var ErrInvalidID = errors.New("invalid workload identity")

// A Kubernetes namespace (DNS-1123 label) and a service account name
// (DNS-1123 subdomain), which is also what the dev CA and the chart issue.
var (
	labelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	subdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

// Parse parses and validates a workload identity: a SPIFFE ID whose path is
// exactly /ns/<namespace>/sa/<service account>.
func Parse(s string) (ID, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return ID{}, fmt.Errorf("%w %q: %v", ErrInvalidID, s, err)
	}
	if _, _, err := Workload(id); err != nil {
		return ID{}, err
	}
	return id, nil
}

// New returns the identity of service account sa in namespace ns of trust
// domain td, validating each part.
func New(td, ns, sa string) (ID, error) {
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return ID{}, fmt.Errorf("%w: trust domain %q: %v", ErrInvalidID, td, err)
	}
	if !labelRE.MatchString(ns) {
		return ID{}, fmt.Errorf("%w: namespace %q is not a DNS-1123 label", ErrInvalidID, ns)
	}
	if !subdomainRE.MatchString(sa) {
		return ID{}, fmt.Errorf("%w: service account %q is not a DNS-1123 subdomain", ErrInvalidID, sa)
	}
	return spiffeid.FromSegments(t, "ns", ns, "sa", sa)
}

// Workload returns the namespace and service account of a workload
// identity, or an error if id does not have the /ns/<ns>/sa/<sa> form.
func Workload(id ID) (ns, sa string, err error) {
	parts := strings.Split(id.Path(), "/")
	if id.IsZero() || len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", fmt.Errorf("%w %q: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", ErrInvalidID, id.String())
	}
	ns, sa = parts[2], parts[4]
	if !labelRE.MatchString(ns) {
		return "", "", fmt.Errorf("%w %q: namespace %q is not a DNS-1123 label", ErrInvalidID, id.String(), ns)
	}
	if !subdomainRE.MatchString(sa) {
		return "", "", fmt.Errorf("%w %q: service account %q is not a DNS-1123 subdomain", ErrInvalidID, id.String(), sa)
	}
	return ns, sa, nil
}
