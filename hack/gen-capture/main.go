// Command gen-capture writes the recorded Hubble capture of config/samples/discovery
// (capture.Sample) in the format `hubble observe -o jsonpb` writes. make generate runs it; a test
// fails when the committed capture differs from what it writes.
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/medseg/medseg/internal/discover/capture"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen-capture FILE")
		os.Exit(2)
	}
	f, err := os.Create(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	if err := capture.Sample(w); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
