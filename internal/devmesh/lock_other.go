//go:build !unix

package devmesh

// lock is a no-op where flock is missing: nothing stops two meshes from
// sharing a data directory there.
func lock(string) (func(), error) { return func() {}, nil }
