// Package authz decides every call to the event service from the access
// policy the control plane derives from the topology
// (angzarr.AccessPolicy, carried in the fan-out configuration): who calls
// comes from the connection's verified client certificate, or from the
// sidecar's x-forwarded-client-cert header when the event service is
// configured to sit behind one (internal/identity). An unknown caller gets
// UNAUTHENTICATED; a call no rule allows gets PERMISSION_DENIED naming the
// identity and the rule, and is counted.
package authz
