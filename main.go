// Command manager runs the medseg operator.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/medseg/medseg/internal/operator"
)

func main() {
	var (
		c          operator.Config
		namespaces string
	)
	flag.StringVar(&c.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables it)")
	flag.StringVar(&c.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	flag.BoolVar(&c.LeaderElection, "leader-elect", true, "elect a leader so only one replica writes")
	flag.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	flag.StringVar(&namespaces, "watch-namespaces", "", "comma-separated namespaces whose MedicalDevices medseg manages (default: all)")
	flag.IntVar(&c.DeviceWorkers, "device-workers", 4, "concurrent MedicalDevice reconciles")
	flag.IntVar(&c.PolicyWorkers, "policy-workers", 2, "concurrent SegmentPolicy reconciles")
	var qps float64
	flag.Float64Var(&qps, "kube-api-qps", operator.DefaultQPS, "client-side limit of requests per second to the API server, per resource kind")
	flag.IntVar(&c.Burst, "kube-api-burst", operator.DefaultBurst, "client-side burst of requests to the API server, per resource kind")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	c.QPS = float32(qps)
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			c.WatchNamespaces = append(c.WatchNamespaces, ns)
		}
	}
	log := ctrl.Log.WithName("setup")
	ctx := ctrl.SetupSignalHandler()
	mgr, err := operator.New(ctx, ctrl.GetConfigOrDie(), c)
	if err != nil {
		log.Error(err, "unable to start medseg")
		os.Exit(1)
	}
	log.Info("starting medseg", "leaderElection", c.LeaderElection, "watchNamespaces", c.WatchNamespaces)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "medseg stopped with an error")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "medseg stopped")
}
