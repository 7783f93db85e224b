package cli

import (
	"context"
	"fmt"
	"path"
	"sort"
	"sync"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/medseg/medseg/internal/report"
)

// fleetOptions are report's flags for several clusters (one per site).
type fleetOptions struct {
	all     bool
	filter  string
	timeout time.Duration
}

// sites are the kubeconfig contexts a fleet report covers: several --context, or every context
// (matching --context-filter) with --all-contexts; none for a report of one cluster.
func (f fleetOptions) sites(o *options) ([]string, error) {
	if f.filter != "" && !f.all {
		return nil, fmt.Errorf("--context-filter selects among --all-contexts: give both")
	}
	if _, err := path.Match(f.filter, ""); err != nil {
		return nil, fmt.Errorf("--context-filter %q: %w", f.filter, err)
	}
	if !f.all {
		if len(o.contexts) > 1 {
			return dedupe(o.contexts), nil
		}
		return nil, nil
	}
	if len(o.contexts) > 0 {
		return nil, fmt.Errorf("--all-contexts reads every context: give no --context")
	}
	raw, err := o.flags.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	var out []string
	for name := range raw.Contexts {
		if ok, _ := path.Match(f.filter, name); f.filter == "" || ok {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no kubeconfig context matches %q", f.filter)
	}
	sort.Strings(out)
	return out, nil
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// maxSiteReads bounds the sites read at once.
const maxSiteReads = 4

// FleetReport reads each site (kubeconfig context) with its own timeout, at most maxSiteReads
// at a time, and builds one report; sites that could not be read are in it as unreachable, and
// returned by name with why.
func FleetReport(o *options, sites []string, timeout time.Duration, now time.Time) (*report.Report, []string) {
	inputs := make([]report.SiteInput, len(sites))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxSiteReads)
	for i, name := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			inputs[i] = readSite(o, name, timeout, now)
		}()
	}
	wg.Wait()
	var unreachable []string
	for _, s := range inputs {
		if s.Err != nil {
			unreachable = append(unreachable, s.Name+": "+s.Err.Error())
		}
	}
	return report.BuildFleet(inputs, now), unreachable
}

// readSite reads one site's devices, policies and approvals.
func readSite(o *options, name string, timeout time.Duration, now time.Time) report.SiteInput {
	site := siteOptions(o, name, timeout)
	s := report.SiteInput{Name: name}
	c, err := NewClient(site.flags)
	if err != nil {
		s.Err = site.unreachable(err)
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ns := ""
	if o.flags.Namespace != nil {
		ns = *o.flags.Namespace
	}
	r, err := readLive(ctx, c, ns)
	if err != nil {
		s.Err = site.apiError(err)
		return s
	}
	r.Now, r.Source = now, site.where()
	s.Input = *r
	return s
}

// siteOptions are the options with kubectl's flags for one context. Without --request-timeout,
// every request to the site is bounded by the site's timeout, so a server that drops packets
// cannot hold the report.
func siteOptions(o *options, name string, timeout time.Duration) *options {
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig, f.ClusterName, f.AuthInfoName, f.Namespace = o.flags.KubeConfig, o.flags.ClusterName, o.flags.AuthInfoName, o.flags.Namespace
	f.APIServer, f.TLSServerName, f.Insecure = o.flags.APIServer, o.flags.TLSServerName, o.flags.Insecure
	f.CertFile, f.KeyFile, f.CAFile, f.BearerToken = o.flags.CertFile, o.flags.KeyFile, o.flags.CAFile, o.flags.BearerToken
	f.Impersonate, f.ImpersonateUID, f.ImpersonateGroup, f.ImpersonateUserExtra = o.flags.Impersonate, o.flags.ImpersonateUID, o.flags.ImpersonateGroup, o.flags.ImpersonateUserExtra
	f.Username, f.Password, f.Timeout, f.DisableCompression = o.flags.Username, o.flags.Password, o.flags.Timeout, o.flags.DisableCompression
	f.WrapConfigFn = o.flags.WrapConfigFn
	if f.Timeout == nil || *f.Timeout == "" || *f.Timeout == "0" {
		t := timeout.String()
		f.Timeout = &t
	}
	f.Context = &name
	return &options{flags: f, streams: o.streams, contexts: []string{name}}
}
