package controllers

import (
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Metrics are medseg's Prometheus metrics, registered with controller-runtime's registry.
type Metrics struct {
	devices      *prometheus.GaugeVec
	driftRepairs *prometheus.CounterVec
	applyErrors  *prometheus.CounterVec
	writes       *prometheus.CounterVec
	// unsegmented counts devices whose Segmented condition is False, by reason.
	unsegmented *prometheus.GaugeVec
	// isolated is 1 per SegmentPolicy whose device networks no ordinary workload reaches.
	isolated *prometheus.GaugeVec
	// gatewayLoad is each SegmentPolicy's most loaded gateway pod: estimated entries over the
	// policy map's capacity.
	gatewayLoad *prometheus.GaugeVec
	// approvalEnds is when each approval that has not expired ends (its notAfter, Unix seconds).
	approvalEnds *prometheus.GaugeVec
	// feedWrite is the newest feed stamp (feeds.medseg.io/<feed>) on any device, per feed.
	feedWrite *prometheus.GaugeVec
	// reconcileErrors counts reconciles that returned an error, per controller.
	reconcileErrors *prometheus.CounterVec

	mu    sync.Mutex
	state map[string][3]string // device key → mode, priority, unsegmented reason
	feeds map[string]time.Time
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medseg_devices", Help: "MedicalDevices by segmentation mode and SSVC priority (mode is empty when no SegmentPolicy governs the device).",
		}, []string{"mode", "priority"}),
		driftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medseg_drift_repairs_total", Help: "Owned Cilium policies put back after a hand edit or deletion.",
		}, []string{"kind"}),
		applyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medseg_apply_errors_total", Help: "Failed writes of Cilium policies.",
		}, []string{"kind"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medseg_policy_writes_total", Help: "Writes of Cilium policies by outcome (created, updated, repaired, pruned).",
		}, []string{"kind", "outcome"}),
		unsegmented: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medseg_devices_unsegmented", Help: "MedicalDevices whose Segmented condition is False, by its reason (AuditOnly and SharedGateway are rollout states).",
		}, []string{"reason"}),
		isolated: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medseg_zone_isolated", Help: "1 when no workload but the gateways reaches the SegmentPolicy's device networks (its Isolated condition), else 0.",
		}, []string{"policy"}),
		gatewayLoad: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medseg_gateway_policy_map_load_ratio", Help: "The SegmentPolicy's most loaded gateway pod: estimated policy map entries over the configured capacity (bpf-policy-map-max).",
		}, []string{"policy"}),
		approvalEnds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medseg_approval_end_timestamp_seconds", Help: "notAfter of each SegmentException and AccessGrant that has not expired, by phase.",
		}, []string{"kind", "name", "phase"}),
		feedWrite: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medseg_feed_last_write_timestamp_seconds", Help: "The newest feeds.medseg.io/<feed> stamp on any MedicalDevice: when the feed last changed a device's risk inputs.",
		}, []string{"feed"}),
		reconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medseg_reconcile_errors_total", Help: "Reconciles that failed and were retried, per controller.",
		}, []string{"controller"}),
		state: map[string][3]string{},
		feeds: map[string]time.Time{},
	}
	if reg != nil {
		reg.MustRegister(m.collectors()...)
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.devices, m.driftRepairs, m.applyErrors, m.writes, m.unsegmented, m.isolated,
		m.gatewayLoad, m.approvalEnds, m.feedWrite, m.reconcileErrors}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// MetricNames are the names of every metric medseg exports (the chart's alerts and dashboard are
// checked against them).
func MetricNames() []string {
	ch := make(chan *prometheus.Desc, 32)
	go func() {
		for _, c := range NewMetrics(nil).collectors() {
			c.Describe(ch)
		}
		close(ch)
	}()
	var out []string
	for d := range ch {
		if mm := fqName.FindStringSubmatch(d.String()); mm != nil {
			out = append(out, mm[1])
		}
	}
	sort.Strings(out)
	return out
}

// reconcileError counts a failed reconcile of a controller.
func (m *Metrics) reconcileError(controller string, err error) {
	if m != nil && err != nil {
		m.reconcileErrors.WithLabelValues(controller).Inc()
	}
}

// observeFeeds keeps the newest stamp of each feed.
func (m *Metrics) observeFeeds(d *v1alpha1.MedicalDevice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range d.Annotations {
		feed, ok := strings.CutPrefix(k, v1alpha1.FeedAnnotationPrefix)
		if !ok || len(feed) > 16 {
			continue
		}
		at, _, _ := strings.Cut(v, " ")
		t, err := time.Parse(time.RFC3339, at)
		if err != nil || !t.After(m.feeds[feed]) {
			continue
		}
		m.feeds[feed] = t
		m.feedWrite.WithLabelValues(feed).Set(float64(t.Unix()))
	}
}

// observePolicy records a SegmentPolicy's isolation and its most loaded gateway.
func (m *Metrics) observePolicy(name string, isolated bool, gateways []v1alpha1.GatewayLoad) {
	v := 0.0
	if isolated {
		v = 1
	}
	m.isolated.WithLabelValues(name).Set(v)
	if len(gateways) > 0 && gateways[0].Capacity > 0 {
		m.gatewayLoad.WithLabelValues(name).Set(float64(gateways[0].Entries) / float64(gateways[0].Capacity))
	} else {
		m.gatewayLoad.DeleteLabelValues(name)
	}
}

// forgetPolicy drops a deleted SegmentPolicy's series.
func (m *Metrics) forgetPolicy(name string) {
	m.isolated.DeleteLabelValues(name)
	m.gatewayLoad.DeleteLabelValues(name)
}

// observeApproval records when an approval ends while it has not expired, and drops it after.
func (m *Metrics) observeApproval(kind, name string, phase v1alpha1.ApprovalPhase, notAfter time.Time) {
	if m == nil {
		return
	}
	m.approvalEnds.DeletePartialMatch(prometheus.Labels{"kind": kind, "name": name})
	if phase != "" && phase != v1alpha1.ApprovalExpired {
		m.approvalEnds.WithLabelValues(kind, name, string(phase)).Set(float64(notAfter.Unix()))
	}
}

func (m *Metrics) observeDevice(key string, seg *v1alpha1.SegmentationStatus, risk *v1alpha1.RiskStatus, unsegmented string) {
	var v [3]string
	if seg != nil && seg.Policy != "" {
		v[0] = string(seg.Mode)
	}
	if risk != nil {
		v[1] = string(risk.Priority)
	}
	v[2] = unsegmented
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.state[key]; ok {
		if old == v {
			return
		}
		m.devices.WithLabelValues(old[0], old[1]).Dec()
		if old[2] != "" {
			m.unsegmented.WithLabelValues(old[2]).Dec()
		}
	}
	m.state[key] = v
	m.devices.WithLabelValues(v[0], v[1]).Inc()
	if v[2] != "" {
		m.unsegmented.WithLabelValues(v[2]).Inc()
	}
}

func (m *Metrics) forgetDevice(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.state[key]; ok {
		m.devices.WithLabelValues(old[0], old[1]).Dec()
		if old[2] != "" {
			m.unsegmented.WithLabelValues(old[2]).Dec()
		}
		delete(m.state, key)
	}
}
