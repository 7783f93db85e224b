// Command manager runs the medseg operator.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/version"
)

func main() {
	var (
		c          operator.Config
		namespaces string
	)
	flag.StringVar(&c.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables it)")
	flag.BoolVar(&c.SecureMetrics, "metrics-secure", true, "serve metrics over HTTPS, only to requests whose bearer token the API server authenticates and authorizes for GET /metrics")
	flag.StringVar(&c.MetricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for the metrics endpoint (default: a self-signed certificate)")
	flag.StringVar(&c.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	flag.BoolVar(&c.LeaderElection, "leader-elect", true, "elect a leader so only one replica writes")
	flag.StringVar(&c.MemoryNamespace, "risk-memory-namespace", "", "namespace of the risk memory ConfigMaps (medseg-risk-memory-*): devices' last known priority, kept across their deletion; medseg's own namespace, which device owners cannot write. Empty: remember nothing")
	flag.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	flag.StringVar(&namespaces, "watch-namespaces", "", "comma-separated namespaces whose MedicalDevices medseg manages (default: all)")
	flag.IntVar(&c.DeviceWorkers, "device-workers", 4, "concurrent MedicalDevice reconciles")
	flag.IntVar(&c.PolicyWorkers, "policy-workers", 2, "concurrent SegmentPolicy reconciles")
	var qps float64
	flag.Float64Var(&qps, "kube-api-qps", operator.DefaultQPS, "client-side limit of requests per second to the API server, per resource kind")
	flag.IntVar(&c.Burst, "kube-api-burst", operator.DefaultBurst, "client-side burst of requests to the API server, per resource kind")
	flag.StringVar(&c.HubbleRelay.Address, "hubble-relay-address", "", "Hubble Relay address (host:port, tls:// for TLS); when set, medseg follows the flows of gateway pods and device addresses and records each device's observed traffic (default: off)")
	flag.BoolVar(&c.HubbleRelay.TLS, "hubble-tls", false, "connect to Hubble Relay with TLS")
	flag.StringVar(&c.HubbleRelay.ServerName, "hubble-tls-server-name", "", "server name to verify Hubble Relay's certificate for, e.g. ui.hubble-relay.cilium.io")
	var caFile string
	flag.StringVar(&caFile, "hubble-tls-ca-file", "", "CA certificate to verify Hubble Relay with")
	flag.StringVar(&c.HubbleRelay.CertFile, "hubble-tls-cert-file", "", "client certificate for mTLS to Hubble Relay")
	flag.StringVar(&c.HubbleRelay.KeyFile, "hubble-tls-key-file", "", "client key for mTLS to Hubble Relay")
	flag.BoolVar(&c.HubbleRelay.InsecureSkipVerify, "hubble-tls-insecure-skip-verify", false, "do not verify Hubble Relay's certificate")
	flag.IntVar(&c.PolicyMapCapacity, "policy-map-capacity", 16384, "Cilium's per-endpoint policy map size (bpf-policy-map-max): devices and SegmentPolicies warn at 75% of it, and above it medseg adds no flows to the gateway")
	flag.DurationVar(&c.TrafficWindow, "traffic-window", 24*time.Hour, "how far back observed traffic counts")
	flag.DurationVar(&c.TrafficInterval, "traffic-status-interval", time.Minute, "shortest time between two observed-traffic status writes of one device")
	showVersion := flag.Bool("version", false, "print the version and exit")
	checkInstall := flag.Bool("check-install", false, "check the installation (every medseg CRD Established, the manager Deployment ready) and exit: what the chart's helm test runs")
	checkNamespace := flag.String("check-namespace", "", "with --check-install: the manager Deployment's namespace")
	checkDeployment := flag.String("check-deployment", "medseg", "with --check-install: the manager Deployment's name")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		version.Print("medseg manager")
		return
	}
	if *checkInstall {
		if err := operator.CheckInstallUntil(ctrl.SetupSignalHandler(), ctrl.GetConfigOrDie(), *checkNamespace, *checkDeployment, 2*time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "medseg is not ready:", err)
			os.Exit(1)
		}
		fmt.Println("medseg is ready: its CRDs are established and the manager Deployment has a ready replica")
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	c.QPS = float32(qps)
	// The chart mounts one Secret for all three files; a Secret with only ca.crt means TLS
	// without a client certificate.
	exists := func(f string) bool { _, err := os.Stat(f); return f != "" && err == nil }
	if exists(caFile) {
		c.HubbleRelay.CAFiles = []string{caFile}
	}
	if !exists(c.HubbleRelay.CertFile) || !exists(c.HubbleRelay.KeyFile) {
		c.HubbleRelay.CertFile, c.HubbleRelay.KeyFile = "", ""
	}
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
	log.Info("starting medseg", "version", version.String(), "leaderElection", c.LeaderElection, "watchNamespaces", c.WatchNamespaces)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "medseg stopped with an error")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "medseg stopped")
}
