// Package cli implements kubectl-medseg. Offline commands read MedicalDevice and SegmentPolicy
// YAML from files (for GitOps CI and auditors) and validate it exactly as the API server would.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Run executes kubectl-medseg with args (without the program name) and returns the exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	var err error
	switch args[0] {
	case "render":
		err = runRender(args[1:], stdin, stdout, stderr)
	case "assess":
		err = runAssess(args[1:], stdin, stdout, stderr)
	default:
		err = fmt.Errorf("unknown command %q", args[0])
		usage(stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kubectl-medseg:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `kubectl-medseg: medseg's kubectl plugin

Offline (files, no cluster):
  render -f PATH... [--now RFC3339]                 print the Cilium policies medseg would own
  assess -f PATH... [-o table|json] [--now RFC3339] print each device's SSVC priority and mode

PATH is a file, a directory of *.yaml/*.yml/*.json, or - for standard input; -f repeats.
`)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type offlineFlags struct {
	files stringList
	now   string
}

func (o *offlineFlags) register(fs *flag.FlagSet) {
	fs.Var(&o.files, "f", "file, directory or - (repeatable)")
	fs.Var(&o.files, "filename", "same as -f")
	fs.StringVar(&o.now, "now", "", "evaluate at this time (RFC3339) instead of the current time")
}

func (o *offlineFlags) load(stdin io.Reader, stderr io.Writer) (*Inputs, time.Time, error) {
	if len(o.files) == 0 {
		return nil, time.Time{}, errors.New("-f PATH is required")
	}
	now := time.Now().UTC()
	if o.now != "" {
		t, err := time.Parse(time.RFC3339, o.now)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("--now: %w", err)
		}
		now = t
	}
	in, err := Load(o.files, stdin)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, w := range in.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	return in, now, nil
}

func runRender(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, now, err := o.load(stdin, stderr)
	if err != nil {
		return err
	}
	return Render(stdout, in, now)
}

func runAssess(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("assess", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs)
	output := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, now, err := o.load(stdin, stderr)
	if err != nil {
		return err
	}
	return Assess(stdout, in, now, *output)
}
