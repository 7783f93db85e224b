// Command kubectl-medseg is medseg's kubectl plugin: offline render and assess for GitOps CI and
// auditors.
package main

import (
	"os"

	"github.com/medseg/medseg/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
