// Package version reports the build's version, set at link time by the
// Makefile (-ldflags "-X .../internal/version.Version=...") and otherwise
// read from the Go build information.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version; the Makefile stamps it from `git describe`.
var Version = ""

// String returns "angzarr VERSION (COMMIT, GOVERSION OS/ARCH)".
func String() string {
	v, commit := Version, ""
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				commit = s.Value[:12]
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if commit == "" {
		commit = "unknown commit"
	}
	return fmt.Sprintf("angzarr %s (%s, %s %s/%s)", v, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
