// Command reportschema writes docs/report.schema.json, the JSON Schema of `kubectl medseg report
// -o json`, from the Go source of package internal/report (see package schema). `make generate`
// runs it; a test of internal/report fails when the committed schema differs from what it
// generates.
//
// Usage: go run ./hack/reportschema internal/report docs/report.schema.json
package main

import (
	"fmt"
	"os"

	"github.com/medseg/medseg/hack/reportschema/schema"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: reportschema PACKAGE_DIR OUTPUT_FILE")
		os.Exit(2)
	}
	out, err := schema.Generate(os.Args[1])
	if err == nil {
		err = os.WriteFile(os.Args[2], out, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reportschema:", err)
		os.Exit(1)
	}
}
