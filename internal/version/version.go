// Package version holds the version of medseg's binaries (the manager and the kubectl plugin),
// stamped at build time:
// -ldflags "-X github.com/medseg/medseg/internal/version.Version=v0.3.0".
package version

import (
	"fmt"
	"runtime/debug"
)

// Version is the release, "dev" in a build that was not stamped.
var Version = "dev"

// String is the version with the Go toolchain and, when the build recorded it, the commit.
func String() string {
	s := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		s += " (" + bi.GoVersion
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				s += ", commit " + kv.Value[:12]
			}
		}
		s += ")"
	}
	return s
}

// Print writes "name version" for --version flags.
func Print(name string) { fmt.Println(name, String()) }
