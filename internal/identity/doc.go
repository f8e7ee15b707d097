// Package identity gives every Angzarr server and client a workload
// identity: SPIFFE IDs of the form spiffe://<trust-domain>/ns/<ns>/sa/<sa>
// (Istio's), mutual TLS from certificate, key and CA files that are re-read
// when they change, the caller's identity from a gRPC peer or, behind a
// sidecar that terminates mTLS, from its x-forwarded-client-cert header, and
// a small certificate authority for tests and `angzarr dev`.
//
// Verification is go-spiffe's (x509svid, tlsconfig): a peer is accepted
// when its chain leads to the CA bundle of its own trust domain, it is not
// expired, and its trust domain is the configured one.
package identity
