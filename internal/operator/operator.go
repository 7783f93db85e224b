// Package operator wires medseg's manager: scheme, cache, indexes, reconcilers, probes and
// metrics. main.go and the envtest tests both start the operator through New, so the tests run
// what ships.
package operator

import (
	"context"
	"fmt"
	"net/http"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/controllers"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/render"
)

// Config is the operator's configuration, from flags in main.go or set by tests.
type Config struct {
	MetricsAddr, ProbeAddr string
	LeaderElection         bool
	LeaderElectionID       string
	// LeaderElectionNamespace defaults to the pod's namespace when running in a cluster.
	LeaderElectionNamespace string
	// SecureMetrics serves the metrics endpoint over HTTPS (a self-signed certificate unless
	// MetricsCertDir holds tls.crt and tls.key) and lets only requests whose bearer token the API
	// server authenticates and authorizes for GET /metrics through (TokenReview,
	// SubjectAccessReview), as controller-runtime's scaffold does.
	SecureMetrics  bool
	MetricsCertDir string
	// MemoryNamespace holds the risk memory (controllers.RiskMemory): devices' last known
	// priority, kept across their deletion. medseg's own namespace, which device owners cannot
	// write; "" remembers nothing.
	MemoryNamespace string
	// WatchNamespaces limits the namespaced objects medseg watches; empty means all.
	WatchNamespaces []string
	DeviceWorkers   int
	PolicyWorkers   int
	// Clock defaults to the real clock.
	Clock clock.PassiveClock
	// NewClient lets tests wrap the client (e.g. to count writes).
	NewClient client.NewClientFunc
	// SkipNameValidation allows several managers in one test process.
	SkipNameValidation bool
	// QPS and Burst bound the client's requests to the API server, per resource kind (client-go's
	// defaults of 5 and 10 would make a cold start of thousands of devices take an hour). Zero
	// means DefaultQPS and DefaultBurst.
	QPS   float32
	Burst int
	// GracefulShutdownTimeout bounds how long in-flight work may finish on stop; zero means 30s.
	GracefulShutdownTimeout time.Duration
	// HubbleRelay, when it has an address, makes the operator follow Hubble Relay's flows of
	// gateway pods and device addresses and record each device's observed traffic in status.
	HubbleRelay discover.RelayOptions
	// HubbleDial replaces discover.Dial (tests dial in-process servers).
	HubbleDial func(discover.RelayOptions) (grpc.ClientConnInterface, func() error, error)
	// TrafficWindow is how far back observed traffic counts (default 24h); TrafficInterval the
	// shortest time between two traffic status writes of one device (default 1m);
	// TrafficTick how often traffic is summarised (default 10s).
	TrafficWindow, TrafficInterval, TrafficTick time.Duration
	// PolicyMapCapacity is Cilium's bpf-policy-map-max (default render.PolicyMapCapacity,
	// 16,384): gateways whose estimated policy maps reach 75% of it are reported.
	PolicyMapCapacity int
}

// Scheme returns the scheme medseg uses: client-go, medseg and Cilium v2.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, ciliumv2.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// DefaultQPS and DefaultBurst are the operator's client-side limits. They let a KEV update that
// touches a thousand devices reach the API server in seconds; protecting the API server from
// any one client is the job of its API Priority and Fairness, which classifies medseg's service
// account like every other controller.
const (
	DefaultQPS   = 200
	DefaultBurst = 400
)

// New builds the manager with both reconcilers registered.
func New(ctx context.Context, cfg *rest.Config, c Config) (manager.Manager, error) {
	s, err := Scheme()
	if err != nil {
		return nil, err
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	cfg = rest.CopyConfig(cfg)
	if c.QPS == 0 {
		c.QPS = DefaultQPS
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	cfg.QPS, cfg.Burst = c.QPS, c.Burst
	if c.GracefulShutdownTimeout == 0 {
		c.GracefulShutdownTimeout = 30 * time.Second
	}
	if c.LeaderElectionID == "" {
		c.LeaderElectionID = "medseg.medseg.io"
	}
	// medseg never reads managedFields, and they are a large share of every cached object
	// (each device carries entries for its owner, every scanner feed and medseg's status
	// writes): strip them from the informer caches. Updates built from a cached object send
	// no managedFields, which the API server reads as "keep the existing ones".
	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if len(c.WatchNamespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range c.WatchNamespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	opts := ctrl.Options{
		Scheme:                        s,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: c.MetricsAddr, SecureServing: c.SecureMetrics, CertDir: c.MetricsCertDir},
		HealthProbeBindAddress:        c.ProbeAddr,
		LeaderElection:                c.LeaderElection,
		LeaderElectionID:              c.LeaderElectionID,
		LeaderElectionNamespace:       c.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptr.To(c.GracefulShutdownTimeout),
		NewClient:                     c.NewClient,
	}
	// controller-runtime v0.24's priority queue can deadlock on shutdown: a worker parked in
	// GetWithPriority returns on shutdown without taking the item the queue's dispatcher is
	// already handing it, and the dispatcher then blocks forever holding the lock the last
	// busy worker needs to finish (kubernetes-sigs/controller-runtime#3538, fixed by #3540 in
	// v0.25, which needs k8s.io v0.37; Cilium's policy engine, which the tests use, needs
	// v0.36). The manager then waited out its whole grace period. Goroutine dumps of stops that
	// overstayed showed exactly that; the classic rate-limited queue does not have it.
	opts.Controller.UsePriorityQueue = ptr.To(false)
	if c.SecureMetrics {
		opts.Metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if c.SkipNameValidation {
		opts.Controller.SkipNameValidation = ptr.To(true)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := controllers.SetupIndexes(ctx, mgr); err != nil {
		return nil, fmt.Errorf("registering indexes: %w", err)
	}
	var reg = metrics.Registry
	if c.SkipNameValidation {
		reg = nil // several managers in one test process would register twice
	}
	m := controllers.NewMetrics(reg)
	copts := controllers.Options{DeviceWorkers: c.DeviceWorkers, PolicyWorkers: c.PolicyWorkers}
	var traffic *controllers.TrafficFollower
	if c.HubbleRelay.Address != "" {
		traffic = controllers.NewTrafficFollower(controllers.TrafficConfig{
			Relay: c.HubbleRelay, Dial: c.HubbleDial, Reader: mgr.GetCache(),
			Window: c.TrafficWindow, Interval: c.TrafficInterval, Tick: c.TrafficTick,
			Log: ctrl.Log.WithName("hubble"),
		})
	}
	var memory *controllers.RiskMemory
	if c.MemoryNamespace != "" {
		memory = &controllers.RiskMemory{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: c.MemoryNamespace}
		if err := mgr.Add(memory); err != nil {
			return nil, err
		}
	}
	capacity := c.PolicyMapCapacity
	if capacity == 0 {
		capacity = render.PolicyMapCapacity
	}
	if err := (&controllers.MedicalDeviceReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("medseg"), Clock: c.Clock, Metrics: m, Traffic: traffic,
		PolicyMapCapacity: capacity, Memory: memory,
	}).SetupWithManager(mgr, copts); err != nil {
		return nil, fmt.Errorf("setting up the MedicalDevice controller: %w", err)
	}
	if err := (&controllers.SegmentPolicyReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("medseg"), Metrics: m, PolicyMapCapacity: capacity,
	}).SetupWithManager(mgr, copts); err != nil {
		return nil, fmt.Errorf("setting up the SegmentPolicy controller: %w", err)
	}
	for _, kind := range []string{"SegmentException", "AccessGrant"} {
		if err := (&controllers.ApprovalReconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("medseg"), Clock: c.Clock, Kind: kind, Metrics: m,
		}).SetupWithManager(mgr, max(1, c.PolicyWorkers)); err != nil {
			return nil, fmt.Errorf("setting up the %s controller: %w", kind, err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}
