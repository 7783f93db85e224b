// Command kubectl-medseg is medseg's kubectl plugin. The commands live in internal/cli: offline
// ones on files (render, assess, report -f) for GitOps CI and auditors, online ones on the live
// cluster (audit, explain, commission, report).
package main

import (
	"os"

	"github.com/medseg/medseg/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
